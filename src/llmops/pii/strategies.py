"""What happens to each finding: mask, tag, hash (a salted pseudonym) or drop the whole text.

``mask`` replaces letters and digits with ``*`` and keeps punctuation, so the length and shape stay
(``****@*******.***``); ``mask_last4`` keeps the last four letters or digits (meant for cards).
``tag`` writes the entity's tag (``<EMAIL>``). ``hash`` writes ``<TAG_xxxxxxxx>``, the first 8 hex
digits of HMAC-SHA256(salt, entity + normalised value): the same value gets the same pseudonym in
every row and run with the same salt, and an unrelated one with another salt; without the salt the
pseudonym cannot be reversed by hashing guessed names. ``drop`` marks the text to be dropped (its
findings are tagged, in case a caller keeps it anyway).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from llmops.pii.base import PiiError

STRATEGIES: tuple[str, ...] = ("mask", "mask_last4", "tag", "hash", "drop")
DEFAULT_KEY = "default"


def strategy_map(strategy: str | Mapping[str, str], known_entities: list[str]) -> tuple[str, dict[str, str]]:
    """(default strategy, per-entity overrides) from a name or ``{entity: strategy, "default": ...}``."""
    if isinstance(strategy, str):
        return _checked(strategy, "strategy"), {}
    overrides = dict(strategy)
    default = _checked(overrides.pop(DEFAULT_KEY, "tag"), "strategy.default")
    for entity, name in overrides.items():
        if entity not in known_entities:
            raise PiiError(
                f"strategies: unknown PII entity {entity!r}; known: {', '.join(known_entities)}",
                param=f"strategies.{entity}",
            )
        _checked(name, f"strategies.{entity}")
    return default, overrides


def _checked(name: str, param: str) -> str:
    if name not in STRATEGIES:
        raise PiiError(
            f"{param}: unknown PII strategy {name!r}; use one of {', '.join(STRATEGIES)}", param=param
        )
    return name


def mask(value: str, keep_last: int = 0) -> str:
    """Letters and digits become ``*``, except the last ``keep_last`` of them."""
    remaining = sum(char.isalnum() for char in value)
    out = []
    for char in value:
        if char.isalnum():
            remaining -= 1
            out.append(char if remaining < keep_last else "*")
        else:
            out.append(char)
    return "".join(out)


def pseudonym(tag: str, entity: str, normalized: str, salt: str) -> str:
    """``<TAG_xxxxxxxx>``: stable for (salt, entity, value), unrelated across salts."""
    digest = hmac.new(salt.encode(), f"{entity}\x00{normalized}".encode(), hashlib.sha256).hexdigest()
    return f"<{tag}_{digest[:8]}>"
