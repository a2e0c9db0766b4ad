"""What ``guardrails:`` in llmops.yaml (and ``/api/guardrails``) declares: one rule per entry.

A rule names a guardrail kind (``type``) with its ``params``, the stage it checks, what happens when
it triggers (``action``) and where it applies (models, keys, teams, prompts: glob patterns; empty means
everywhere)::

    guardrails:
      - {name: no-secrets, type: secrets, stage: both, action: block}
      - {name: mask-pii, type: pii, stage: input, action: redact, params: {entities: [EMAIL_ADDRESS]}}
      - name: injection
        type: injection
        action: block
        mode: parallel
        params: {classifier: true}
        models: ["gpt-*"]
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from llmops.storable import check_storable

Action = Literal["block", "redact", "redact_trace", "flag"]
StageChoice = Literal["input", "output", "both"]
Mode = Literal["blocking", "parallel"]
ACTIONS: tuple[str, ...] = ("block", "redact", "redact_trace", "flag")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
DEFAULT_BLOCK_MESSAGE = "The answer was withheld by a content filter."
# a glob of model, key, team or prompt names
NameGlob = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


class GuardrailConfig(BaseModel):
    """One guardrail rule (validated when the settings load, or when the API receives it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="Unique name; shown on traces and in metrics.")
    type: str = Field(
        min_length=1, max_length=200, description="Guardrail kind: pii, secrets, injection, ..."
    )
    stage: StageChoice = Field(default="input", description="Check the prompt, the answer, or both.")
    action: Action = Field(
        default="block",
        description="block, redact (what goes on is redacted), redact_trace (only the stored trace is "
        "redacted) or flag (pass, and mark the trace).",
    )
    mode: Mode = Field(
        default="blocking",
        description="For slow input checks: blocking (before the upstream call) or parallel (the call "
        "starts at once and is cancelled if the check blocks).",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's own parameters.")
    models: tuple[NameGlob, ...] = Field(
        default=(), description="Model names (globs) it applies to; empty: all."
    )
    keys: tuple[NameGlob, ...] = Field(default=(), description="API key names or ids (globs); empty: all.")
    teams: tuple[NameGlob, ...] = Field(default=(), description="Team names (globs); empty: all.")
    prompts: tuple[NameGlob, ...] = Field(default=(), description="Prompt names (globs); empty: all.")
    roles: tuple[Literal["system", "user", "assistant", "tool", "developer"], ...] = Field(
        default=("user",), description="Chat input: the roles of the messages checked."
    )
    message: str | None = Field(
        default=None, max_length=2000, description="What a blocked answer is replaced with."
    )
    fail_open: bool = Field(
        default=False, description="A check that fails (raises) lets the text pass instead of triggering."
    )
    enabled: bool = Field(default=True, description="Off: kept, but not applied.")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """No NUL characters and no integers past JSON's safe range anywhere (both end up in a JSON
        column, which Postgres refuses or other readers round)."""
        check_storable(data, "rule")
        return data

    @property
    def stages(self) -> tuple[str, ...]:
        return ("input", "output") if self.stage == "both" else (self.stage,)

    def applies(self, model: str, key_names: tuple[str, ...], team: str | None, prompt: str | None) -> bool:
        """Whether this rule covers a request for ``model`` by a key known as ``key_names`` (its name
        and id), of ``team``, rendering ``prompt`` (each unset list matches everything)."""
        if not self.enabled:
            return False
        if self.models and not _any(self.models, (model,)):
            return False
        if self.keys and not _any(self.keys, key_names):
            return False
        if self.teams and not (team is not None and _any(self.teams, (team,))):
            return False
        return not self.prompts or (prompt is not None and _any(self.prompts, (prompt,)))


def _any(patterns: tuple[str, ...], values: tuple[str, ...]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns for value in values)
