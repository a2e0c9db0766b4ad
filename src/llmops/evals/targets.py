"""What an evaluation run evaluates, and what each row sends it.

- ``model``: a model of the gateway with parameters; a row sends its ``messages``, or its ``input`` as
  one user message.
- ``prompt``: a prompt of the registry by reference (``NAME@LABEL``, ``NAME#3``), rendered by the
  gateway with the row's ``variables`` (the trace records the prompt version that answered).
- ``endpoint``: an external OpenAI-compatible endpoint, called through the gateway as a model of its own
  (``openai`` provider with that base URL), so it is traced and cost-accounted like the rest.
- ``column``: no call; the output is a field of the row (answers produced elsewhere).
- ``traces``: no call; the output is what production answered (rows selected from traces).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from llmops.errors import UserError
from llmops.evals.calls import ChatRequest, ChatResult

KINDS = ("model", "prompt", "endpoint", "column", "traces")
ENDPOINT_MODEL = "eval-endpoint"  # the gateway's name for an endpoint target's upstream during a run
REFUSED_PARAMS = frozenset({"model", "messages", "prompt", "stream", "n", "prompt_variables"})
_PROMPT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}([@#][A-Za-z0-9._-]{1,100})?$")


class InvalidTarget(UserError):
    """A target that cannot be evaluated (kind, reference, parameters)."""


@dataclass(frozen=True)
class Target:
    kind: str
    model: str | None = None  # model name; prompt reference; the endpoint's upstream model
    params: dict[str, Any] = field(default_factory=dict)
    base_url: str | None = None  # endpoint
    api_key_env: str | None = None  # endpoint: the variable holding its key
    column: str | None = None  # column: the row field holding the output

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidTarget(f"target kind {self.kind!r}: use one of {', '.join(KINDS)}", param="target")
        refused = sorted(REFUSED_PARAMS & set(self.params))
        if refused:
            raise InvalidTarget(f"parameters cannot set {', '.join(refused)}", param="params")
        needs = {"model": self.model, "prompt": self.model, "endpoint": self.base_url, "column": self.column}
        if self.kind in needs and not needs[self.kind]:
            what = {
                "model": "a model",
                "prompt": "a prompt reference",
                "endpoint": "a base URL",
                "column": "a field",
            }
            raise InvalidTarget(f"a {self.kind} target needs {what[self.kind]}", param="target")
        if self.kind == "prompt" and not _PROMPT_REF.fullmatch(self.model or ""):
            raise InvalidTarget(f"invalid prompt reference {self.model!r}: NAME, NAME@LABEL or NAME#VERSION")

    @property
    def calls_model(self) -> bool:
        return self.kind in ("model", "prompt", "endpoint")

    def describe(self) -> str:
        if self.kind == "prompt":
            return f"prompt:{self.model}"
        if self.kind == "endpoint":
            return f"{self.base_url} ({self.model or 'default model'})"
        if self.kind == "column":
            return f"column {self.column}"
        return "traces" if self.kind == "traces" else str(self.model)

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in (None, {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        return cls(**data)

    def request(self, row: dict[str, Any]) -> ChatRequest | str:
        """The call a row makes (a string says why it cannot)."""
        from llmops.evals.runner import chat_request

        if self.kind == "prompt":
            variables = row.get("variables") if isinstance(row.get("variables"), dict) else {}
            given = row.get("messages")
            messages: list[dict[str, Any]] = given if isinstance(given, list) else []
            return ChatRequest(
                f"prompt:{self.model}", messages, {**self.params, "prompt_variables": variables}
            )
        model = ENDPOINT_MODEL if self.kind == "endpoint" else str(self.model)
        return chat_request(model, row, dict(self.params))

    def read_output(self, row: dict[str, Any], trace: dict[str, Any] | None) -> ChatResult | None:
        """The output when it is read rather than asked for; None for targets that call a model."""
        if self.kind == "column":
            value = row.get(self.column or "")
            if value is None:
                return ChatResult(None, error=f"the row has no field {self.column!r}")
            return ChatResult(value if isinstance(value, str) else str(value))
        if self.kind == "traces":
            found = trace or {}
            return ChatResult(
                found.get("output"),
                found.get("latency_ms") or 0.0,
                found.get("prompt_tokens"),
                found.get("completion_tokens"),
                found.get("cost"),
                found.get("trace_id"),
                None if found.get("output") is not None else "the trace has no answer",
            )
        return None
