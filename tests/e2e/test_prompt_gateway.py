"""Prompts served by the gateway, through a real `llmops serve` and the official openai client.

Prompts and experiments are created through the service functions on the server's own database
(``open_store``), as the CLI does; the server loads them on the first request that names them.
What went upstream is read from the fake upstream's record of request bodies; the trace from
``GET /api/traces/{id}``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from conftest import Server, find_trace, start_server, wait_for
from fake_upstream import ANSWER_PREFIX, FakeUpstream
from llmops.prompts.spec import MessageTemplate, PromptContent, VariableSpec
from llmops.services import Store, open_store
from llmops.settings import load_settings


@pytest.fixture(scope="module")
def store(server: Server) -> Iterator[Store]:
    opened = open_store(load_settings(database_url=server.database_url, home=server.home))
    yield opened
    opened.close()


@pytest.fixture
def api(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def support(system: str = "You support {{ product }}. Be {{ tone }}.", **parameters: Any) -> PromptContent:
    return PromptContent(
        kind="chat",
        messages=(
            MessageTemplate(role="system", content=system),
            MessageTemplate(role="user", content="{{ question }}"),
        ),
        variables={
            "product": VariableSpec(required=True),
            "tone": VariableSpec(default="brief"),
            "question": VariableSpec(required=True),
        },
        model="gpt-fake",
        parameters={"temperature": 0.3, "max_tokens": 40, **parameters},
    )


def sent_upstream(upstream: FakeUpstream, marker: str) -> dict[str, Any]:
    """The last request body the fake upstream received that contains ``marker``."""
    for body in reversed(upstream.requests):
        if marker in str(body):
            return body
    raise AssertionError(f"no upstream request contains {marker!r}")


def variables(marker: str, **more: str) -> dict[str, Any]:
    return {"prompt_variables": {"product": "llmops", "question": f"How? {marker}", **more}}


def test_model_string_forms_pick_label_latest_or_version(
    server: Server, store: Store, api: openai.OpenAI, upstream: FakeUpstream
) -> None:
    name = unique("support")
    for temperature in (0.1, 0.2, 0.3):
        store.prompts.create_version(name, support(temperature=temperature))
    cases = [(f"prompt:{name}", 3, None)]  # no production label yet: the latest version
    store.prompts.set_label(name, "staging", 2)
    cases += [(f"prompt:{name}@staging", 2, "staging"), (f"prompt:{name}#1", 1, None)]
    for model, version, label in cases:
        marker = unique("m")
        answer = api.chat.completions.create(model=model, messages=[], extra_body=variables(marker))
        assert answer.choices[0].message.content == f"{ANSWER_PREFIX}How? {marker}"
        sent = sent_upstream(upstream, marker)
        assert sent["temperature"] == {1: 0.1, 2: 0.2, 3: 0.3}[version]
        trace = find_trace(server, marker, model=model)
        assert (trace["prompt_name"], trace["prompt_version"], trace["prompt_label"]) == (
            name,
            version,
            label,
        )
        assert (trace["requested_model"], trace["provider"]) == (model, "openai")


def test_variables_messages_and_parameters_make_the_upstream_request(
    server: Server, store: Store, api: openai.OpenAI, upstream: FakeUpstream
) -> None:
    name = unique("support")
    store.prompts.create_version(name, support(), labels=["production"])
    marker = unique("m")
    answer = api.chat.completions.create(
        model=f"prompt:{name}@production",
        messages=[
            {"role": "assistant", "content": "An earlier answer."},
            {"role": "user", "content": f"And then? {marker}"},
        ],
        temperature=0.9,  # the request's own value wins over the prompt's 0.3
        extra_body=variables(marker, tone="warm"),
    )
    assert answer.choices[0].message.content == f"{ANSWER_PREFIX}And then? {marker}"
    sent = sent_upstream(upstream, marker)
    assert sent["model"] == "fake-model"  # gpt-fake's upstream id: the prompt's model
    assert sent["messages"] == [
        {"role": "system", "content": "You support llmops. Be warm."},
        {"role": "user", "content": f"How? {marker}"},
        {"role": "assistant", "content": "An earlier answer."},
        {"role": "user", "content": f"And then? {marker}"},
    ]
    assert (sent["temperature"], sent["max_tokens"]) == (0.9, 40)
    assert "prompt_variables" not in sent
    trace = find_trace(server, marker)
    assert trace["request"]["messages"] == sent["messages"]  # the trace keeps the rendered request
    assert trace["attributes"]["prompt_variables"]["tone"] == "warm"
    assert (trace["prompt_name"], trace["prompt_version"], trace["prompt_label"]) == (name, 1, "production")


def test_streaming_a_prompt(server: Server, store: Store, api: openai.OpenAI) -> None:
    name = unique("support")
    store.prompts.create_version(name, support(), labels=["production"])
    marker = unique("m")
    stream = api.chat.completions.create(
        model=f"prompt:{name}",
        messages=[],
        stream=True,
        stream_options={"include_usage": True},
        extra_body=variables(marker),
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == f"{ANSWER_PREFIX}How? {marker}"
    assert chunks[-1].usage is not None
    trace = find_trace(server, marker)
    assert trace["stream"] is True
    assert (trace["prompt_name"], trace["prompt_version"], trace["prompt_label"]) == (name, 1, "production")


def test_completions_with_a_text_prompt(server: Server, store: Store, api: openai.OpenAI) -> None:
    name = unique("summary")
    content = PromptContent(
        kind="text",
        template="Summarise in {{ words }} words: {{ text }}",
        variables={"words": VariableSpec(type="integer", default=12), "text": VariableSpec(required=True)},
        model="gpt-fake",
        parameters={"max_tokens": 20},
    )
    store.prompts.create_version(name, content)
    marker = unique("m")
    answer = api.completions.create(
        model=f"prompt:{name}", prompt=" (tail)", extra_body={"prompt_variables": {"text": marker}}
    )
    assert answer.choices[0].text == f"{ANSWER_PREFIX}Summarise in 12 words: {marker} (tail)"
    chat = api.chat.completions.create(
        model=f"prompt:{name}", messages=[], extra_body={"prompt_variables": {"text": marker, "words": 3}}
    )
    assert chat.choices[0].message.content == f"{ANSWER_PREFIX}Summarise in 3 words: {marker}"


def test_errors_are_openai_errors(store: Store, api: openai.OpenAI) -> None:
    name = unique("support")
    store.prompts.create_version(name, support())
    with pytest.raises(openai.BadRequestError) as missing:
        api.chat.completions.create(
            model=f"prompt:{name}", messages=[], extra_body={"prompt_variables": {"product": "x"}}
        )
    assert missing.value.param == "prompt_variables"
    assert "missing required variable 'question'" in missing.value.message
    with pytest.raises(openai.BadRequestError) as not_an_object:
        api.chat.completions.create(model=f"prompt:{name}", messages=[], extra_body={"prompt_variables": "x"})
    assert not_an_object.value.param == "prompt_variables"
    with pytest.raises(openai.NotFoundError) as unknown:
        api.chat.completions.create(model=f"prompt:{unique('nothing')}", messages=[])
    assert unknown.value.code == "prompt_not_found"
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model=f"prompt:{name}@nolabel", messages=[])
    with pytest.raises(openai.BadRequestError) as embeddings:
        api.embeddings.create(model=f"prompt:{name}", input="x")
    assert embeddings.value.param == "model"


def test_an_experiment_splits_users_and_sticks(
    server: Server, store: Store, api: openai.OpenAI, upstream: FakeUpstream
) -> None:
    name = unique("exp")
    store.prompts.create_version(
        name, support(system="Variant one for {{ product }}."), labels=["production"]
    )
    store.prompts.create_version(name, support(system="Variant two for {{ product }}."))
    experiment = store.experiments.create(unique("t"), name, [("one", 1, 1), ("two", 2, 1)])
    marker = unique("m")
    seen: dict[str, str] = {}
    for _round in range(2):
        for n in range(30):
            user = f"user-{n}-{marker}"
            api.chat.completions.create(
                model=f"prompt:{name}", messages=[], user=user, extra_body=variables(user)
            )
            system = sent_upstream(upstream, user)["messages"][0]["content"]
            assert seen.setdefault(user, system) == system  # the same user always gets the same variant
    assert set(seen.values()) == {"Variant one for llmops.", "Variant two for llmops."}
    user = f"user-0-{marker}"
    trace = find_trace(server, user)
    expected = "one" if seen[user].startswith("Variant one") else "two"
    assert (trace["experiment"], trace["variant"]) == (experiment.id, expected)
    assert trace["prompt_version"] == {"one": 1, "two": 2}[expected]
    assert trace["prompt_label"] == "production"
    pinned = unique("m")  # an explicit version never takes part
    api.chat.completions.create(
        model=f"prompt:{name}#2", messages=[], user=user, extra_body=variables(pinned)
    )
    assert find_trace(server, pinned)["experiment"] is None


def test_an_experiment_sticky_by_header(store: Store, api: openai.OpenAI, upstream: FakeUpstream) -> None:
    name = unique("exp")
    store.prompts.create_version(name, support(system="Variant one for {{ product }}."), labels=["beta"])
    store.prompts.create_version(name, support(system="Variant two for {{ product }}."))
    store.experiments.create(
        unique("t"), name, [("one", 1, 1), ("two", 2, 1)], label="beta", sticky_by="header"
    )
    seen: dict[str, set[str]] = {}
    for n in range(24):
        subject = f"subject-{n}"
        for attempt in range(2):
            marker = unique("m")
            api.chat.completions.create(
                model=f"prompt:{name}@beta",
                messages=[],
                user=f"another-user-{attempt}",  # not the subject of this experiment
                extra_headers={"x-llmops-user": subject},
                extra_body=variables(marker),
            )
            seen.setdefault(subject, set()).add(sent_upstream(upstream, marker)["messages"][0]["content"])
    assert all(len(systems) == 1 for systems in seen.values())
    assert len(set().union(*seen.values())) == 2


def _ask(server: Server, model: str) -> str:
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": model, "messages": [], "prompt_variables": {"q": "ping"}},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def test_a_label_moved_in_the_shared_database_reaches_every_replica(
    tmp_path_factory: pytest.TempPathFactory, postgres_database_url: str
) -> None:
    """Two `llmops serve` processes on one Postgres database: a label moved is served by both within
    a few seconds (each polls the registry's revision every prompt_refresh_seconds, default 2 s)."""
    replicas: list[Server] = []
    store = open_store(load_settings(database_url=postgres_database_url, home=tmp_path_factory.mktemp("cli")))
    try:
        for version in ("one", "two"):
            store.prompts.create_version(
                "shared",
                PromptContent(
                    kind="chat",
                    messages=(MessageTemplate(role="user", content=f"version {version}: {{{{ q }}}}"),),
                    variables={"q": VariableSpec(required=True)},
                    model="echo",
                ),
            )
        store.prompts.set_label("shared", "production", 1)
        for name in ("a", "b"):
            replicas.append(
                start_server(
                    tmp_path_factory.mktemp(f"replica-{name}"),
                    models=[{"name": "echo", "provider": "echo"}],
                    database_url=postgres_database_url,
                )
            )
        for replica in replicas:  # warm: both have resolved the label
            assert _ask(replica, "prompt:shared@production") == "version one: ping"
            assert _ask(replica, "prompt:shared") == "version one: ping"
        store.prompts.set_label("shared", "production", 2)
        moved = time.monotonic()
        for replica in replicas:
            wait_for(lambda r=replica: _ask(r, "prompt:shared@production") == "version two: ping", timeout=10)
            assert _ask(replica, "prompt:shared") == "version two: ping"
        assert time.monotonic() - moved < 10
    finally:
        for replica in replicas:
            replica.stop()
        store.close()
