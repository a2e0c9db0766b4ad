"""Request bodies and answers of the annotation-queue routes (/api/annotation-queues)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt
from pydantic.config import JsonDict

from llmops.annotation.schema import (
    MAX_CATEGORIES,
    MAX_COMMENT_LENGTH,
    MAX_CORRECTION_LENGTH,
    MAX_LABEL_LENGTH,
    LabelSchema,
)
from llmops.annotation.service import MAX_ANNOTATORS_PER_ITEM, NAME_PATTERN
from llmops.server.admin_schema import NO_NUL
from llmops.server.dataset_schema import JsonNumber, TraceFilterIn
from llmops.server.prompt_schema import whole_number

# the examples name the queue and item the e2e tests create (tests/e2e/test_annotation_api.py)
QueuePath = Annotated[
    str, Path(pattern=NAME_PATTERN, description="The queue's name.", examples=["support-review"])
]
ItemPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="An item id, as `next` hands it out.")]
_Short = Annotated[str, Field(max_length=200, pattern=NO_NUL)]
_Category = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_LENGTH, pattern=NO_NUL)]
_Ref = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}(@([0-9]{1,9}|latest))?$"


class ScoreRangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: JsonNumber
    max: JsonNumber


class LabelSchemaIn(BaseModel):
    """What annotators are asked for: any of a label, a score in a range, a corrected output."""

    model_config = ConfigDict(extra="forbid")

    categories: list[_Category] = Field(default_factory=list, max_length=MAX_CATEGORIES)
    score: ScoreRangeIn | None = Field(None, description="An inclusive range, e.g. {min: 1, max: 5}.")
    correction: StrictBool = Field(False, description="Ask for the output as it should have been.")
    instructions: Annotated[str, Field(max_length=10_000, pattern=NO_NUL)] | None = None

    def to_schema(self) -> LabelSchema:
        return LabelSchema.from_dict(self.model_dump(exclude_none=True))


_QUEUE_EXAMPLE: JsonDict = {
    "name": "support-review",
    "dataset": "support-qa@1",
    "schema": {
        "categories": ["good", "bad"],
        "score": {"min": 1, "max": 5},
        "correction": True,
        "instructions": "Is the answer right and polite? Correct it if not.",
    },
    "annotators_per_item": 2,
}


class QueueIn(BaseModel):
    """A queue over a dataset version (`dataset`) or over traces (`traces`): exactly one of them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                _QUEUE_EXAMPLE,
                {
                    "name": "thumbs-down",
                    "traces": {"model": "echo", "since": "7d", "feedback": "down"},
                    "schema": {"categories": ["wrong", "unhelpful", "fine"], "correction": True},
                },
            ]
        },
    )

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    dataset: Annotated[str, Field(pattern=_Ref, description="NAME (latest) or NAME@VERSION.")] | None = None
    traces: TraceFilterIn | None = None
    label_schema: LabelSchemaIn = Field(alias="schema")
    annotators_per_item: Annotated[
        StrictInt, Field(ge=1, le=MAX_ANNOTATORS_PER_ITEM), BeforeValidator(whole_number)
    ] = 1


class NextIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"lease_seconds": 1800}]})

    lease_seconds: Annotated[StrictInt, Field(ge=1, le=7 * 24 * 3600), BeforeValidator(whole_number)] = Field(
        1800, description="How long the item stays yours."
    )


class AnswerIn(BaseModel):
    """At least one of label, score, correction (as the queue's schema asks); a comment may come too."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"label": "bad", "score": 2, "correction": "Your order ships tomorrow.", "comment": "rude"}
            ]
        },
    )

    label: _Category | None = None
    score: JsonNumber | None = None
    correction: Annotated[str, Field(max_length=MAX_CORRECTION_LENGTH, pattern=NO_NUL)] | None = None
    comment: Annotated[str, Field(max_length=MAX_COMMENT_LENGTH, pattern=NO_NUL)] | None = None


class AcceptIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"into": "support-qa", "include_partial": False}]}
    )

    into: Annotated[str, Field(pattern=NAME_PATTERN)] | None = Field(
        None, description="The dataset to write (default: the source dataset, or the queue's name)."
    )
    include_partial: StrictBool = Field(False, description="Also take items with fewer answers than asked.")
    message: Annotated[str, Field(max_length=2000, pattern=NO_NUL)] | None = None


# -- answers --------------------------------------------------------------------------------------------


class QueueOut(BaseModel):
    name: str
    source: Literal["dataset", "traces"]
    dataset: str | None = Field(description="NAME@VERSION the items came from (dataset queues).")
    traces: dict[str, Any] | None = Field(description="The trace filter the items came from.")
    label_schema: dict[str, Any] = Field(alias="schema", serialization_alias="schema")
    annotators_per_item: int
    status: str = Field(description="open, closed (or creating while its items are written).")
    items: int
    result: str | None = Field(description="NAME@VERSION of the last accepted version.")
    created_by: str | None
    created_at: datetime

    model_config = ConfigDict(populate_by_name=True)


class QueueListOut(BaseModel):
    data: list[QueueOut]


class ItemOut(BaseModel):
    id: str
    queue: str
    position: int
    row_hash: str | None
    trace_id: str | None
    data: dict[str, Any] = Field(description="The row to annotate.")
    lease_expires_at: datetime | None


class NextOut(BaseModel):
    item: ItemOut | None = Field(description="null: nothing left for this annotator now.")
    annotator: str
    label_schema: dict[str, Any] = Field(alias="schema", serialization_alias="schema")

    model_config = ConfigDict(populate_by_name=True)


class AnswerOut(BaseModel):
    id: str
    item_id: str
    annotator: str
    label: str | None
    score: float | None
    correction: str | None
    comment: str | None
    created_at: datetime
    replaced: bool = Field(description="True when it replaced this annotator's earlier answer.")


class SkipOut(BaseModel):
    item_id: str
    annotator: str
    skipped: bool


class AnnotatorOut(BaseModel):
    annotator: str
    answered: int
    skipped: int


class LabelAgreementOut(BaseModel):
    items: int = Field(description="Items with two labels or more.")
    annotators: int
    cohen_kappa: float | None = Field(description="Exactly two annotators: over the items both labelled.")
    fleiss_kappa: float | None = Field(description="Over the items with annotators_per_item labels.")
    fleiss_items: int
    krippendorff_alpha: float | None = Field(description="Nominal; any number of labels per item.")


class ScoreAgreementOut(BaseModel):
    items: int = Field(description="Items with two scores or more.")
    krippendorff_alpha: float | None = Field(description="Interval metric.")


class AgreementOut(BaseModel):
    labels: LabelAgreementOut
    scores: ScoreAgreementOut


class StatusOut(BaseModel):
    queue: QueueOut
    items: int
    complete: int
    partial: int
    untouched: int
    answers: int
    leased: int = Field(description="Items handed out now and not answered yet.")
    annotators: list[AnnotatorOut]
    agreement: AgreementOut


class AcceptOut(BaseModel):
    version: dict[str, Any] = Field(description="The dataset version written (or the equal latest one).")
    created: bool
    accepted: int
    partial: int
    left_out: int
