"""What a guardrail is: a check over one text that returns a :class:`Verdict`, behind a small base class.

A guardrail looks at one text (a prompt's messages joined, or an answer) and says whether it objects,
how strongly (``score`` in 0..1), why, and, for checks that find pieces of the text (PII, secrets,
words), where (``findings``), so the ``redact`` action can replace exactly those spans. What happens
next (block, redact, flag) is the configuration's business, not the check's: see
:mod:`llmops.guardrails.engine`.

Errors (all :class:`~llmops.errors.UserError`, so the CLI prints one line and the API answers 400):
:class:`GuardrailError`, and its subclass :class:`GuardrailUnavailable` when a guardrail needs an
optional extra that is not installed (its message says which ``pip install`` fixes it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from llmops.errors import UserError

Stage = Literal["input", "output"]


class GuardrailError(UserError):
    """A guardrail that cannot be built or run as configured: unknown type, bad parameters."""


class GuardrailUnavailable(GuardrailError):
    """A guardrail needs an optional extra (a classifier) that is not installed."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One span of the checked text a guardrail objects to: ``text[start:end]``, of ``kind``."""

    kind: str  # e.g. EMAIL_ADDRESS, aws_access_key, deny_word
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a check decided about one text.

    ``triggered``: the guardrail objects (its configured action then applies). ``score``: how sure
    or how strong, 0..1 (1.0 for a pattern that matched). ``reason``: one line a person can read
    ("2 findings: EMAIL_ADDRESS, PHONE_NUMBER"); never the offending text itself when that text is
    a secret. ``findings``: the spans, for checks that can redact. ``details``: anything else worth
    keeping on the trace (a classifier's label, the schema error), JSON-serialisable.
    """

    triggered: bool
    score: float = 0.0
    reason: str = ""
    findings: tuple[Finding, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


PASS = Verdict(False)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check may want besides the text: the stage, the model asked for, the request's payload.

    ``judge`` is an async callable ``(model, messages) -> answer text`` going through the gateway,
    given to guardrails that ask a model (the LLM-as-guard); None where no gateway is at hand.
    """

    stage: Stage
    model: str = ""
    payload: Mapping[str, Any] | None = None
    judge: Any = None


class Guardrail(ABC):
    """One kind of check, built once from its configured ``params`` and then shared by requests.

    - ``kind``: the registry name configurations refer to (``type: secrets``).
    - ``slow``: the check takes milliseconds or more (a classifier, a model call). The engine runs a
      slow check off the event loop (in a thread, or awaited when :meth:`acheck` is overridden), and
      only slow checks may use ``mode: parallel``.
    - ``can_redact``: the check returns ``findings`` that the ``redact`` action can replace.
    - ``stages``: the stages it makes sense on (a JSON-schema check is for answers only).

    ``__init__`` validates ``params`` and raises :class:`GuardrailError` naming the bad one; it may
    load what the check needs (a pattern list, a model), once. :meth:`check` must be safe to call from
    several threads at once, and must not raise for any text (it is given user input).
    """

    kind: ClassVar[str]
    slow: bool = False  # an instance may set it (a check whose classifier is switched on by a parameter)
    can_redact: ClassVar[bool] = False
    stages: ClassVar[tuple[Stage, ...]] = ("input", "output")

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)

    @abstractmethod
    def check(self, text: str, context: CheckContext) -> Verdict:
        """Decide about ``text`` (see :class:`Verdict`)."""

    async def acheck(self, text: str, context: CheckContext) -> Verdict:
        """The asynchronous form; the engine calls this. Slow checks run in a thread by default."""
        if not self.slow:
            return self.check(text, context)
        import asyncio

        return await asyncio.to_thread(self.check, text, context)


def param(params: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """``params[name]`` if it is of ``kind`` (booleans are not numbers), else GuardrailError."""
    value = params.get(name, default)
    if value is None:
        return None
    numeric = kind in (int, float) or (isinstance(kind, tuple) and (int in kind or float in kind))
    if not isinstance(value, kind) or (numeric and isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise GuardrailError(f"guardrail parameter {name!r} must be a {names}, not {value!r}", param=name)
    return value


def unknown_params(params: Mapping[str, Any], known: tuple[str, ...], kind: str) -> None:
    """GuardrailError for a parameter the guardrail does not know (a typo must not pass silently)."""
    for name in params:
        if name not in known:
            allowed = ", ".join(known) or "none"
            raise GuardrailError(
                f"guardrail {kind!r} has no parameter {name!r} (it takes: {allowed})", param=name
            )


def fraction(params: Mapping[str, Any], name: str, default: float) -> float:
    """``params[name]`` as a number between 0 and 1 (a threshold or a score), else GuardrailError."""
    value = float(param(params, name, (int, float), default))
    if not 0.0 <= value <= 1.0:
        raise GuardrailError(
            f"guardrail parameter {name!r} must be between 0 and 1, not {value!r}", param=name
        )
    return value
