"""Team isolation through a real `llmops serve`: a team's keys never read another team's things.

Two teams each make traces through /v1 with their inference key, and prompts, datasets and evaluation
runs through /api with their editor key. Then team a's viewer and editor list only a's things, get 404
for b's (reads, writes into b's names, feedback, runs over b's dataset, the playground on b's prompt),
and a dataset built from traces holds a's traces only; a key of no team sees neither; an admin sees all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conftest import Server, call_api, expect, start_server, wait_for
from llmops.services import open_store
from llmops.settings import load_settings

TEAMS = ("a", "b")
ROLES = ("inference", "viewer", "editor")


@dataclass
class World:
    server: Server
    key_ids: dict[str, str]  # key name -> id
    traces: dict[str, str]  # team -> the id of the trace its inference key made


def _chat(server: Server, key: str, text: str) -> None:
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        headers=server.headers(key),
        json={"model": "echo", "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def _make_things(server: Server, team: str) -> None:
    """What team ``team``'s editor makes: a prompt, a dataset and a finished evaluation run over it."""
    editor = f"editor-{team}"
    prompt = {
        "name": f"prompt-{team}",
        "kind": "text",
        "template": "Hi {{ q }}",
        "variables": {"q": {}},
        "labels": ["production"],
    }
    expect(call_api(server, "POST", "/api/prompts", editor, json=prompt), 201)
    rows = {"rows": [{"input": f"question {team}", "expected": "yes", "answer": "yes"}]}
    expect(call_api(server, "POST", f"/api/datasets/data-{team}/rows", editor, json=rows), 201)
    run = {
        "dataset": f"data-{team}",
        "target": {"kind": "column", "column": "answer"},
        "metrics": ["exact_match"],
        "name": f"run-{team}",
    }
    created = expect(call_api(server, "POST", "/api/evals", editor, json=run), 202)
    wait_for(lambda: expect(call_api(server, "GET", f"/api/evals/{created['id']}"))["status"] == "succeeded")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp_path = tmp_path_factory.mktemp("isolation")
    home = tmp_path / "home"
    home.mkdir()
    database_url = f"sqlite:///{home / 'llmops.db'}"
    store = open_store(load_settings(database_url=database_url, home=home))
    secrets, key_ids = {}, {}
    try:
        for name, role, team in [
            ("admin", "admin", None),
            ("viewer-none", "viewer", None),
            *((f"{role}-{team}", role, f"team-{team}") for team in TEAMS for role in ROLES),
        ]:
            if team is not None and team not in {row.name for row in store.team_repository.ordered()}:
                store.teams.create(team)
            created = store.keys.create(name, role, team=team)
            secrets[name], key_ids[name] = created.secret, created.row.id
    finally:
        store.close()
    server = start_server(tmp_path, models=[{"name": "echo", "provider": "echo"}], database_url=database_url)
    server.keys.update(secrets)
    try:
        for team in TEAMS:
            _chat(server, f"inference-{team}", f"hello from team {team}")
        page: dict[str, Any] = wait_for(
            lambda: (found := expect(call_api(server, "GET", "/api/traces")))["data"][1:] and found
        )
        by_key = {item["api_key_id"]: item["id"] for item in page["data"]}
        traces = {team: by_key[key_ids[f"inference-{team}"]] for team in TEAMS}
        for team in TEAMS:
            _make_things(server, team)
        yield World(server, key_ids, traces)
    finally:
        server.stop()


def _names(server: Server, path: str, key: str, field: str = "name") -> set[str]:
    body = expect(call_api(server, "GET", path, key))
    items = body["data"] if isinstance(body, dict) else body
    return {item[field] for item in items}


def _not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, f"{response.request.method} {response.request.url}: {response.text}"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("key", ["viewer-a", "editor-a"])
def test_a_teams_keys_list_and_read_only_their_teams_things(world: World, key: str) -> None:
    server, trace_b = world.server, world.traces["b"]
    assert _names(server, "/api/traces", key, "id") == {world.traces["a"]}
    assert expect(call_api(server, "GET", f"/api/traces/{world.traces['a']}", key))["id"] == world.traces["a"]
    assert _names(server, "/api/prompts", key) == {"prompt-a"}
    assert _names(server, "/api/datasets", key) == {"data-a"}
    assert _names(server, "/api/evals", key) == {"run-a"}
    for path in (
        f"/api/traces/{trace_b}",
        "/api/prompts/prompt-b",
        "/api/prompts/prompt-b/versions",
        "/api/prompts/prompt-b/versions/1",
        "/api/prompts/prompt-b/labels",
        "/api/prompts/prompt-b/labels/production",
        "/api/prompts/prompt-b/history",
        "/api/prompts/prompt-b/diff?from=1&to=1",
        "/api/datasets/data-b",
        "/api/datasets/data-b/versions/1",
        "/api/datasets/data-b/versions/1/rows",
        "/api/datasets/data-b/versions/1/export",
        "/api/datasets/data-b/diff?base=1&other=1",
        "/api/evals/run-b",
        "/api/evals/run-b/results",
        "/api/evals/compare?runs=run-a&runs=run-b",
    ):
        _not_found(call_api(server, "GET", path, key))
    _not_found(call_api(server, "POST", "/api/prompts/prompt-b/render", key, json={"variables": {"q": "x"}}))
    gate = {
        "baseline": "run-b",
        "candidate": "run-a",
        "metrics": [{"metric": "exact_match", "max_drop": 0.1}],
    }
    _not_found(call_api(server, "POST", "/api/evals/gate", key, json=gate))


def test_a_teams_editor_cannot_change_or_use_another_teams_things(world: World) -> None:
    server, key = world.server, "editor-a"
    taken = {"name": "prompt-b", "kind": "text", "template": "Mine now"}
    _not_found(call_api(server, "POST", "/api/prompts", key, json=taken))
    _not_found(call_api(server, "PUT", "/api/prompts/prompt-b/labels/production", key, json={"version": 1}))
    _not_found(call_api(server, "DELETE", "/api/prompts/prompt-b/labels/production", key))
    _not_found(call_api(server, "POST", "/api/prompts/prompt-b/labels/production/rollback", key))
    _not_found(call_api(server, "POST", "/api/datasets/data-b/rows", key, json={"rows": [{"input": "x"}]}))
    _not_found(call_api(server, "POST", "/api/datasets/data-b/from-traces", key, json={}))
    _not_found(call_api(server, "POST", "/api/evals/run-b/labels", key, json={"label": "mine"}))
    _not_found(call_api(server, "POST", "/api/evals/run-b/resume", key))
    over_b = {
        "dataset": "data-b",
        "target": {"kind": "column", "column": "answer"},
        "metrics": ["exact_match"],
    }
    _not_found(call_api(server, "POST", "/api/evals", key, json=over_b))
    on_b = {"prompt": "prompt-b", "variables": {"q": "x"}, "models": ["echo"]}
    _not_found(call_api(server, "POST", "/api/playground", key, json=on_b))
    note = {"thumb": "down"}
    _not_found(
        call_api(server, "POST", f"/api/traces/{world.traces['b']}/feedback", "inference-a", json=note)
    )
    expect(
        call_api(server, "POST", f"/api/traces/{world.traces['a']}/feedback", "inference-a", json=note), 201
    )
    admin_view = expect(call_api(server, "GET", "/api/prompts/prompt-b/versions"))
    assert [version["version"] for version in admin_view["data"]] == [1]  # b's prompt is as b left it
    assert expect(call_api(server, "GET", f"/api/traces/{world.traces['b']}"))["feedback"] == []


def test_a_dataset_from_traces_holds_only_the_teams_traces(world: World) -> None:
    server = world.server
    job = expect(call_api(server, "POST", "/api/datasets/from-a/from-traces", "editor-a", json={}), 202)
    finished = wait_for(
        lambda: (
            (found := expect(call_api(server, "GET", f"/api/jobs/{job['id']}")))["status"]
            in ("succeeded", "failed")
            and found
        )
    )
    assert finished["status"] == "succeeded", finished
    rows = expect(call_api(server, "GET", "/api/datasets/from-a/versions/1/rows", "viewer-a"))["data"]
    assert [row["row"]["metadata"]["trace_id"] for row in rows] == [world.traces["a"]]
    _not_found(call_api(server, "GET", "/api/datasets/from-a", "viewer-b"))


def test_a_key_of_no_team_sees_neither_team_and_an_admin_sees_both(world: World) -> None:
    server = world.server
    assert _names(server, "/api/traces", "viewer-none", "id") == set()
    assert _names(server, "/api/prompts", "viewer-none") == set()
    assert _names(server, "/api/datasets", "viewer-none") == set()
    assert _names(server, "/api/evals", "viewer-none") == set()
    _not_found(call_api(server, "GET", "/api/prompts/prompt-a", "viewer-none"))
    assert _names(server, "/api/traces", "admin", "id") >= set(world.traces.values())
    assert _names(server, "/api/prompts", "admin") == {"prompt-a", "prompt-b"}
    assert _names(server, "/api/datasets", "admin") >= {"data-a", "data-b"}
    assert _names(server, "/api/evals", "admin") == {"run-a", "run-b"}
    assert _names(server, "/api/prompts", "viewer-b") == {"prompt-b"}


def test_the_gateway_serves_a_teams_prompt_to_that_team_only(world: World) -> None:
    server = world.server
    served = {"name": "served-b", "kind": "text", "template": "Hi", "model": "echo", "labels": ["production"]}
    expect(call_api(server, "POST", "/api/prompts", "editor-b", json=served), 201)
    shared = {**served, "name": "served-shared"}
    expect(call_api(server, "POST", "/api/prompts", "admin", json=shared), 201)  # an admin's: no team

    def chat(key: str, model: str) -> httpx.Response:
        return httpx.post(
            f"{server.base_url}/chat/completions",
            headers=server.headers(key),
            json={"model": model, "messages": [{"role": "user", "content": "x"}]},
            timeout=30,
        )

    assert chat("inference-b", "prompt:served-b").status_code == 200
    refused = chat("inference-a", "prompt:served-b")
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "prompt_not_found"
    assert chat("inference-a", "prompt:served-shared").status_code == 200
    assert chat("admin", "prompt:served-b").status_code == 200
