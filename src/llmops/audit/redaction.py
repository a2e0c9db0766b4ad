"""Secrets out of audit events: one function applied to every ``before`` and ``after``.

An audit event outlives the secrets it mentions and is read by every admin, so it keeps what
changed but never a secret: a field named like one (``secret``, ``api_key``, ``password``,
``token``...) is replaced whole, and a string that holds an llmops key secret or a value the
caller says is secret has that part replaced, wherever it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"

# whole words of a field name that mark its value as secret ("access_token", "client-secret")
_SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "token",
        "authorization",
        "ciphertext",
        "nonce",
    }
)
# endings of a field name that mark it ("x-api-key", "api_key", "key_hash", "master_key")
_SECRET_ENDINGS = ("api_key", "apikey", "key_hash", "previous_hash", "master_key", "private_key")
_KEY_SECRET = re.compile(r"sk-llmops-[A-Za-z0-9_\-]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def is_secret_field(name: str) -> bool:
    """Whether a field called ``name`` holds a secret (any case, snake, kebab or camel)."""
    words = [word for word in _SEPARATORS.split(_CAMEL.sub("_", name).lower()) if word]
    if any(word in _SECRET_WORDS for word in words):
        return True
    joined = "_".join(words)
    return any(joined == ending or joined.endswith("_" + ending) for ending in _SECRET_ENDINGS)


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` with every secret replaced by ``"[redacted]"``; containers are copied, never changed.

    ``secrets`` are values known to be secret (a key secret just created, a credential just set):
    any string containing one has it replaced, whatever field it is in.
    """
    known = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    return _redact(value, known)


def _redact(value: Any, known: list[str]) -> Any:
    if isinstance(value, str):
        return _scrub(value, known)
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and is_secret_field(key) and value[key] is not None
            else _redact(value[key], known)
            for key in value
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(item, known) for item in value]
    return value


def _scrub(text: str, known: list[str]) -> str:
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_SECRET.sub(REDACTED, text)
