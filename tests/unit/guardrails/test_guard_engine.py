"""The guardrail engine: rules built from configuration, selection, decisions, and the stream guard."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from llmops.guardrails import GuardrailConfig, GuardrailError, GuardrailRegistry, guardrail
from llmops.guardrails.base import CheckContext
from llmops.guardrails.engine import Decision, GuardrailSet, run_checks
from llmops.guardrails.streaming import StreamGuard
from llmops.guardrails.texts import input_segments, join, split, with_texts


def rules(*configs: dict[str, Any], registry: GuardrailRegistry | None = None) -> GuardrailSet:
    return GuardrailSet.build(
        [GuardrailConfig.model_validate(config) for config in configs], registry or GuardrailRegistry()
    )


def test_a_rule_is_refused_when_its_type_cannot_do_what_it_asks() -> None:
    with pytest.raises(GuardrailError, match="no-spans.*finds no spans to redact"):
        rules({"name": "no-spans", "type": "length", "action": "redact", "params": {"max_chars": 5}})
    with pytest.raises(GuardrailError, match="parallel is for stage input only"):
        rules({"name": "p", "type": "secrets", "stage": "output", "mode": "parallel"})
    with pytest.raises(GuardrailError, match="cannot redact what already went upstream"):
        rules({"name": "p", "type": "pii", "mode": "parallel", "action": "redact"})
    with pytest.raises(GuardrailError, match="declared twice"):
        rules({"name": "a", "type": "secrets"}, {"name": "a", "type": "pii"})
    with pytest.raises(GuardrailError, match="unknown guardrail type 'secret'.*did you mean 'secrets'"):
        rules({"name": "a", "type": "secret"})
    with pytest.raises(GuardrailError, match="json.*checks output only"):
        rules({"name": "j", "type": "json", "stage": "input"})


def test_config_refuses_what_a_json_column_cannot_keep() -> None:
    with pytest.raises(ValueError, match="NUL"):
        GuardrailConfig.model_validate({"name": "a", "type": "regex", "params": {"patterns": ["a\x00"]}})
    with pytest.raises(ValueError, match="out of range"):
        GuardrailConfig.model_validate({"name": "a", "type": "length", "params": {"max_chars": 2**70}})


def test_selection_by_model_key_team_and_prompt() -> None:
    chosen = rules(
        {"name": "everywhere", "type": "secrets"},
        {"name": "gpt-only", "type": "pii", "models": ["gpt-*"]},
        {"name": "team-a", "type": "pii", "teams": ["a"], "stage": "output"},
        {"name": "off", "type": "pii", "enabled": False},
        {"name": "prompted", "type": "pii", "prompts": ["support"]},
    )
    selected = chosen.select("gpt-4o", ("app", "key_1"), "a", None)
    assert selected is not None
    assert [rule.name for rule in selected.input_blocking] == ["everywhere", "gpt-only"]
    assert [rule.name for rule in selected.output] == ["team-a"]
    other = chosen.select("llama", ("app",), None, "support")
    assert other is not None
    assert [rule.name for rule in other.input_blocking] == ["everywhere", "prompted"]
    assert rules().select("gpt-4o", ("app",), None, None) is None


def test_redaction_applies_before_later_rules_and_block_stops() -> None:
    chosen = rules(
        {"name": "pii", "type": "pii", "action": "redact"},
        {"name": "words", "type": "keywords", "action": "flag", "params": {"deny": ["invoice"]}},
        {"name": "stop", "type": "keywords", "params": {"deny": ["EMAIL_ADDRESS"]}},
        {"name": "never-run", "type": "secrets"},
    )
    seen: list[Decision] = []
    result = asyncio.run(
        run_checks(
            chosen.rules, "mail jane@example.com the invoice", CheckContext("input"), on_decision=seen.append
        )
    )
    assert result.text == "mail <EMAIL_ADDRESS> the invoice"
    assert [decision.action for decision in result.decisions] == ["redact", "flag", "block"]
    assert result.blocked is not None
    assert result.blocked.guardrail == "stop"
    assert seen == result.decisions


def test_redact_trace_changes_only_the_trace_copy() -> None:
    chosen = rules({"name": "pii", "type": "pii", "action": "redact_trace"})
    result = asyncio.run(run_checks(chosen.rules, "mail jane@example.com", CheckContext("input")))
    assert result.text == "mail jane@example.com"
    assert result.trace_text == "mail <EMAIL_ADDRESS>"


def test_a_check_that_raises_fails_closed_unless_told_otherwise(tmp_path: Any) -> None:
    registry = GuardrailRegistry()

    @guardrail("broken")
    def broken(text: str) -> bool:
        raise RuntimeError("boom")

    registry.register("broken", broken)
    closed = rules({"name": "b", "type": "broken"}, registry=registry)
    result = asyncio.run(run_checks(closed.rules, "hi", CheckContext("input")))
    assert result.blocked is not None
    assert "RuntimeError" in result.blocked.reason
    opened = rules({"name": "b", "type": "broken", "fail_open": True}, registry=registry)
    assert asyncio.run(run_checks(opened.rules, "hi", CheckContext("input"))).blocked is None


def test_custom_guardrails_from_a_module_file(tmp_path: Any) -> None:
    module = tmp_path / "guards.py"
    module.write_text(
        "from llmops.guardrails import Guardrail, Verdict, guardrail\n"
        "@guardrail\n"
        "async def shouting(text, context):\n"
        "    return sum(c.isupper() for c in text) / max(len(text), 1)\n"
        "class NoDigits(Guardrail):\n"
        "    kind = 'no-digits'\n"
        "    def check(self, text, context):\n"
        "        return Verdict(any(c.isdigit() for c in text), reason='digits')\n"
    )
    registry = GuardrailRegistry()
    assert sorted(registry.load_module(str(module))) == ["no-digits", "shouting"]
    chosen = rules(
        {"name": "loud", "type": "shouting", "action": "flag", "params": {"threshold": 0.5}},
        {"name": "digits", "type": "no-digits"},
        registry=registry,
    )
    result = asyncio.run(run_checks(chosen.rules, "HELLO there 42", CheckContext("input")))
    assert [(d.guardrail, d.action) for d in result.decisions] == [("digits", "block")]
    result = asyncio.run(run_checks(chosen.rules, "HELLO THERE", CheckContext("input")))
    assert [(d.guardrail, d.action) for d in result.decisions] == [("digits", "pass"), ("loud", "flag")]
    with pytest.raises(GuardrailError, match="guardrail module .*nothing.py: file not found"):
        registry.load_module(str(tmp_path / "nothing.py"))


def test_texts_of_a_chat_request_go_back_where_they_came_from() -> None:
    payload = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "one\n\ntwo"},
            {"role": "user", "content": [{"type": "text", "text": "three"}, {"type": "image_url"}]},
        ],
    }
    segments = input_segments("chat", payload, ("user",))
    joined = join(segments)
    texts = split(joined, joined.text.replace("two", "2").replace("three", "3"))
    assert texts == ["one\n\n2", "3"]
    changed = with_texts(payload, segments, texts)
    assert changed["messages"][1]["content"] == "one\n\n2"
    assert changed["messages"][2]["content"][0]["text"] == "3"
    assert payload["messages"][1]["content"] == "one\n\ntwo"  # the caller's payload is untouched


def _chunk(text: str) -> bytes:
    message = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + orjson.dumps(message) + b"\n\n"


def _guard(*configs: dict[str, Any], window: int) -> tuple[StreamGuard, list[Decision]]:
    chosen = rules(*configs)
    seen: list[Decision] = []
    guard = StreamGuard(
        [rule for rule in chosen.rules if not rule.guard.slow],
        [rule for rule in chosen.rules if rule.guard.slow],
        CheckContext("output"),
        kind="chat",
        window=window,
        on_decision=seen.append,
        error_event=lambda decision: b'data: {"error": 1}\n\n',
    )
    return guard, seen


def _texts(data: bytes) -> str:
    out = []
    for event in data.split(b"\n\n"):
        if event.startswith(b"data: {"):
            message = orjson.loads(event[6:])
            out.append(message["choices"][0]["delta"].get("content", ""))
    return "".join(out)


def test_stream_holds_back_no_more_than_the_window() -> None:
    guard, _ = _guard(
        {"name": "w", "type": "keywords", "stage": "output", "params": {"deny": ["zzz"]}}, window=10
    )
    released = [guard.feed(_chunk("abcde")) for _ in range(6)]
    assert released[0] == b""
    assert released[1] == b""  # 10 characters held
    assert _texts(released[2]) == "abcde"  # each later chunk lets one out
    assert guard.released_chars == 20
    rest = asyncio.run(guard.finish())
    assert _texts(rest) == "abcde" * 2


def test_stream_block_across_chunks_never_sends_the_word() -> None:
    guard, seen = _guard(
        {"name": "w", "type": "keywords", "stage": "output", "params": {"deny": ["forbidden"]}}, window=16
    )
    sent = b"".join(
        guard.feed(_chunk(part)) for part in ("a long harmless start ", "then forb", "idden", " end")
    )
    assert "forb" not in _texts(sent)
    assert guard.blocked is not None
    assert guard.blocked.guardrail == "w"
    assert seen[0].details["at_char"] == guard.released_chars


def test_stream_redaction_inside_the_window() -> None:
    guard, seen = _guard({"name": "pii", "type": "pii", "stage": "output", "action": "redact"}, window=40)
    parts = ("write to jane.", "doe@exam", "ple.com and then some more words to push it out")
    sent = b"".join(guard.feed(_chunk(part)) for part in parts) + asyncio.run(guard.finish())
    text = _texts(sent)
    assert "jane.doe" not in text
    assert "<EMAIL_ADDRESS>" in text
    assert text.endswith("push it out")
    assert [decision.action for decision in seen] == ["redact"]


def test_stream_keeps_done_until_the_end_and_checks_split_events() -> None:
    guard, _ = _guard(
        {"name": "w", "type": "keywords", "stage": "output", "params": {"deny": ["zzz"]}}, window=4
    )
    whole = _chunk("hello world") + b"data: [DONE]\n\n"
    first = guard.feed(whole[:17])  # an event cut mid-way arrives in two network chunks
    second = guard.feed(whole[17:])
    assert b"[DONE]" not in first + second
    assert b"[DONE]" in asyncio.run(guard.finish())


def test_passes_go_to_on_passes_in_batches_between_the_other_decisions() -> None:
    chosen = rules(
        {"name": "secrets", "type": "secrets"},
        {"name": "words", "type": "keywords", "action": "flag", "params": {"deny": ["invoice"]}},
        {"name": "len", "type": "length", "params": {"max_chars": 1000}},
        {"name": "re", "type": "regex", "params": {"patterns": ["drop table"]}},
    )
    order: list[str] = []

    def passed(stage: str, passes: list[Any]) -> None:
        order.extend(f"{stage}:{rule.name}:pass:{took >= 0}" for rule, _verdict, took in passes)

    def decided(decision: Decision) -> None:
        order.append(f"{decision.stage}:{decision.guardrail}:{decision.action}")

    result = asyncio.run(
        run_checks(chosen.rules, "the invoice", CheckContext("input"), on_decision=decided, on_passes=passed)
    )
    assert order == [
        "input:secrets:pass:True",
        "input:words:flag",
        "input:len:pass:True",
        "input:re:pass:True",
    ]
    assert [decision.guardrail for decision in result.decisions] == ["words"]  # passes are not Decisions
    without = asyncio.run(run_checks(chosen.rules, "the invoice", CheckContext("input")))
    assert [decision.action for decision in without.decisions] == ["pass", "flag", "pass", "pass"]


def test_stream_records_each_passing_rule_once_when_it_ends() -> None:
    guard, seen = _guard(
        {"name": "w", "type": "keywords", "stage": "output", "params": {"deny": ["zzz"]}},
        {"name": "len", "type": "length", "stage": "output", "params": {"max_chars": 1000}},
        window=4,
    )
    for part in ("hello ", "there ", "world"):
        guard.feed(_chunk(part))
    assert seen == []  # nothing decided while the stream runs
    asyncio.run(guard.finish())
    assert [(d.guardrail, d.action, d.mode) for d in seen] == [
        ("w", "pass", "stream"),
        ("len", "pass", "stream"),
    ]
    assert seen[0].details == {"windows": 3}
    assert seen[0].ms > 0


def test_stream_blocked_by_one_rule_records_the_others_as_passes_first() -> None:
    guard, seen = _guard(
        {"name": "len", "type": "length", "stage": "output", "params": {"max_chars": 1000}},
        {"name": "w", "type": "keywords", "stage": "output", "params": {"deny": ["forbidden"]}},
        window=4,
    )
    guard.feed(_chunk("fine so far "))
    guard.feed(_chunk("forbidden"))
    assert guard.blocked is not None
    assert [(d.guardrail, d.action) for d in seen] == [("len", "pass"), ("w", "block")]
    asyncio.run(guard.finish())  # nothing more is recorded after a block
    assert len(seen) == 2


def test_a_stream_check_that_raises_fails_closed_unless_told_otherwise() -> None:
    registry = GuardrailRegistry()

    @guardrail("broken")
    def broken(text: str) -> bool:
        raise RuntimeError("boom")

    registry.register("broken", broken)
    for fail_open, blocked in ((False, True), (True, False)):
        chosen = rules(
            {"name": "b", "type": "broken", "stage": "output", "fail_open": fail_open}, registry=registry
        )
        seen: list[Decision] = []
        guard = StreamGuard(
            chosen.rules,
            [],
            CheckContext("output"),
            kind="chat",
            window=4,
            on_decision=seen.append,
            error_event=lambda decision: b'data: {"error": 1}\n\n',
        )
        guard.feed(_chunk("hello there"))
        asyncio.run(guard.finish())
        assert (guard.blocked is not None) is blocked
        assert seen[-1].action == ("block" if blocked else "pass")
