"""POST /api/pii/redact and /api/pii/analyze: the PII service over REST (as ``llmops pii scan`` does).

One :class:`~llmops.pii.PiiService` per app, built on the first request (loading spaCy takes about a
second, and a server that never redacts should not pay for it), with the ``pii_salt`` setting. The
routes are plain ``def`` so that the CPU-bound NER runs in the thread pool, not on the event loop.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from llmops.pii import PiiFinding, PiiService
from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import NO_NUL, error_responses
from llmops.services import Services

MAX_TEXT_CHARS = 100_000
MAX_TEXTS = 100
MAX_ENTITIES = 32

Strategy = Literal["mask", "mask_last4", "tag", "hash", "drop"]
EntityName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS, pattern=NO_NUL)]

# Exactly one of text and texts.
_ONE_INPUT: dict[str, JsonValue] = {
    "oneOf": [
        {"required": ["text"], "not": {"required": ["texts"]}},
        {"required": ["texts"], "not": {"required": ["text"]}},
    ]
}
_EXAMPLE: dict[str, JsonValue] = {
    "text": "Mail jane.roe@example.org or call +44 20 7946 0958; card 4111 1111 1111 1111.",
    "strategy": "tag",
    "strategies": {"CREDIT_CARD": "mask_last4"},
}


def _no_default(schema: dict[str, JsonValue]) -> None:
    schema.pop("default", None)


class AnalyzeIn(BaseModel):
    """One text (``text``) or several (``texts``), and the entities to look for (default: all available)."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            **_ONE_INPUT,
            "examples": [{"text": _EXAMPLE["text"], "entities": ["EMAIL_ADDRESS"]}],
        },
    )

    # Optional without a None in the type: an error's location is then the field alone (``text``, not
    # ``text.str``), and the schema says what may be sent. Whether a field was given: model_fields_set.
    text: Text = Field(default="", json_schema_extra=_no_default)
    texts: list[Text] = Field(
        default_factory=list, min_length=1, max_length=MAX_TEXTS, json_schema_extra=_no_default
    )
    entities: list[EntityName] = Field(
        default_factory=list,
        min_length=1,
        max_length=MAX_ENTITIES,
        description="e.g. EMAIL_ADDRESS, PERSON; default: every available entity.",
        json_schema_extra=_no_default,
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        """The schema makes no field nullable: a null is refused, not read as "left out"."""
        nulls = [key for key, value in data.items() if value is None] if isinstance(data, dict) else []
        if nulls:
            raise ValueError(f"{nulls[0]}: leave it out rather than null")
        return data

    @model_validator(mode="after")
    def _one_input(self) -> AnalyzeIn:
        if ("text" in self.model_fields_set) == ("texts" in self.model_fields_set):
            raise ValueError("give either text or texts")
        return self

    def inputs(self) -> list[str]:
        return [self.text] if "text" in self.model_fields_set else self.texts

    def entity_names(self) -> list[str] | None:
        return self.entities if "entities" in self.model_fields_set else None


class RedactIn(AnalyzeIn):
    """What to analyze, and what to do with each finding: a strategy, with per-entity overrides."""

    model_config = ConfigDict(
        strict=True, extra="forbid", json_schema_extra={**_ONE_INPUT, "examples": [_EXAMPLE]}
    )

    strategy: Strategy = Field(default="tag", description="For every entity without an override.")
    strategies: Annotated[dict[EntityName, Strategy], Field(max_length=MAX_ENTITIES)] = Field(
        default_factory=dict, description='Per-entity strategy, e.g. {"PERSON": "hash"}.'
    )

    def strategy_map(self) -> dict[str, str]:
        return {**self.strategies, "default": self.strategy}


class FindingOut(BaseModel):
    entity: str
    start: int = Field(description="Offset of the first character (Python string index).")
    end: int = Field(description="Offset after the last character.")
    text: str
    score: float


class AnalysisOut(BaseModel):
    findings: list[FindingOut]


class RedactionOut(AnalysisOut):
    text: str = Field(description="The redacted text.")
    drop: bool = Field(description="True when a finding's strategy is drop: the caller should drop the text.")


class _PiiAnswer(BaseModel):
    nlp: bool = Field(description="Whether PERSON, LOCATION and DATE_TIME were looked for (the data extra).")
    skipped_entities: list[str] = Field(description="Entities left out of the default set on this server.")


class AnalyzeOut(_PiiAnswer):
    results: list[AnalysisOut] = Field(description="One per input text, in order.")


class RedactOut(_PiiAnswer):
    results: list[RedactionOut] = Field(description="One per input text, in order.")


class _LazyPii:
    """The app's PiiService, built on first use (thread-safe: routes run in the thread pool)."""

    def __init__(self, salt: str | None) -> None:
        self._salt = salt
        self._service: PiiService | None = None
        self._lock = threading.Lock()

    def get(self) -> PiiService:
        with self._lock:
            if self._service is None:
                self._service = PiiService(salt=self._salt)
            return self._service


def _finding(finding: PiiFinding) -> dict[str, Any]:
    return {
        "entity": finding.entity,
        "start": finding.start,
        "end": finding.end,
        "text": finding.text,
        "score": finding.score,
    }


def _answer(service: PiiService, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "results": results,
        "nlp": service.nlp_available,
        "skipped_entities": list(service.skipped_entities),
    }


_ERRORS = error_responses(
    400,
    descriptions={
        400: "Invalid body, an unknown entity or strategy, hash without a salt on this server, or an NLP"
        " entity (PERSON, LOCATION, DATE_TIME) on a server without the data extra.",
    },
)


def pii_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["pii"])
    lazy = _LazyPii(services.settings.pii_salt)

    @router.post("/api/pii/analyze", operation_id="analyze_pii", response_model=AnalyzeOut, responses=_ERRORS)
    def analyze(_: Caller, body: AnalyzeIn) -> dict[str, Any]:
        """Find PII in one text or several: entity, offsets, text and score of each finding."""
        service = lazy.get()
        entities = body.entity_names()
        if entities is not None:
            service.check_entities(entities)
        results = [
            {"findings": [_finding(finding) for finding in service.analyze(text, entities)]}
            for text in body.inputs()
        ]
        return _answer(service, results)

    @router.post("/api/pii/redact", operation_id="redact_pii", response_model=RedactOut, responses=_ERRORS)
    def redact(_: Caller, body: RedactIn) -> dict[str, Any]:
        """Redact PII in one text or several: mask, tag (`<EMAIL>`), hash (`<PERSON_1a2b3c4d>`) or drop."""
        service = lazy.get()
        strategy = body.strategy_map()
        entities = body.entity_names()
        service.check(strategy, entities)
        results = []
        for text in body.inputs():
            redaction = service.redact(text, strategy, entities)
            results.append(
                {
                    "text": redaction.text,
                    "drop": redaction.drop,
                    "findings": [_finding(finding) for finding in redaction.findings],
                }
            )
        return _answer(service, results)

    return router
