"""redact(): what an audit event's before/after may keep and what it never keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.audit import REDACTED, is_secret_field, redact


@pytest.mark.parametrize(
    "name",
    [
        "secret",
        "client_secret",
        "api_key",
        "x-api-key",
        "apiKey",
        "key_hash",
        "previous_hash",
        "password",
        "token",
        "access_token",
        "Authorization",
        "ciphertext",
        "nonce",
        "master_key",
    ],
)
def test_fields_named_like_secrets_are_redacted(name: str) -> None:
    assert is_secret_field(name)
    assert redact({name: "value", "other": 1}) == {name: REDACTED, "other": 1}


@pytest.mark.parametrize(
    "name",
    ["name", "max_tokens", "prompt_tokens", "key_id", "api_key_id", "api_key_env", "api_key_credential"],
)
def test_ordinary_fields_are_kept(name: str) -> None:
    assert not is_secret_field(name)
    assert redact({name: "value"}) == {name: "value"}


def test_nested_values_are_redacted_and_the_input_is_left_unchanged() -> None:
    value = {"key": {"name": "app", "headers": [{"authorization": "Bearer x"}]}, "tags": ("a", "b")}
    redacted = redact(value)
    assert redacted == {"key": {"name": "app", "headers": [{"authorization": REDACTED}]}, "tags": ["a", "b"]}
    assert value["key"]["headers"][0]["authorization"] == "Bearer x"  # type: ignore[index]


def test_llmops_key_secrets_are_redacted_wherever_they_appear() -> None:
    text = "created sk-llmops-AbC_def-123 for the app"
    assert redact({"note": text}) == {"note": f"created {REDACTED} for the app"}
    assert redact(["sk-llmops-x"]) == [REDACTED]


def test_known_secrets_are_redacted_wherever_they_appear() -> None:
    value = {"comment": "the key is hunter2-upstream", "list": ["hunter2-upstream"]}
    assert redact(value, ["hunter2-upstream"]) == {
        "comment": f"the key is {REDACTED}",
        "list": [REDACTED],
    }


def test_empty_secret_fields_and_other_values_stay() -> None:
    assert redact({"secret": None, "n": 1.5, "ok": True}) == {"secret": None, "n": 1.5, "ok": True}
    assert redact(None) is None
    assert redact("plain") == "plain"


def test_integers_past_64_bits_are_stored_as_text(tmp_path: Path) -> None:
    """A feedback body with a huge number once lost its audit event (orjson refuses such integers)."""
    from llmops.audit.actor import Actor
    from llmops.audit.service import AuditService
    from llmops.store import open_database

    engine = open_database(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        audit = AuditService(engine)
        audit.record(Actor("ops", "api"), "add_feedback", "traces", "t1", after={"score": 2**70, "n": 5})
        (event,) = audit.list().items
    finally:
        engine.dispose()
    assert event["after"] == {"score": str(2**70), "n": 5}
