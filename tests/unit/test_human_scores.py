"""Human scores as a metric, on SQLite and Postgres: feedback on an item's trace (``human``) and the
answers of an annotation queue on the evaluated row (``human:QUEUE``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from llmops.annotation.models import QueueNotFound
from llmops.annotation.schema import LabelSchema
from llmops.annotation.service import AnnotationService
from llmops.datasets.service import DatasetService
from llmops.datasets.traces_source import TraceSelection
from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.human import HumanScorer
from llmops.evals.scorers.registry import BadScorerArg, MissingResource, ScorerRegistry, ScorerResources
from llmops.store import KeyRepository, TraceRepository
from llmops.tracing.record import TraceRecord
from llmops.tracing.service import FeedbackInput, TraceService

ROWS = [
    {"input": "2+2?", "expected": "4"},
    {"input": "capital of France?", "expected": "Paris"},
    {"input": "hello", "expected": "hi"},
]


def _trace_id(n: int) -> str:
    return f"{n:032x}"


def _traces(db: Engine, count: int) -> None:
    rows = []
    for n in range(1, count + 1):
        record = TraceRecord(
            id=_trace_id(n),
            started_at=datetime(2026, 5, 1, tzinfo=UTC).timestamp() + n,
            endpoint="chat.completions",
            requested_model="model-a",
            stream=False,
            latency_ms=1.0,
        )
        record.request = {"model": "model-a", "messages": [{"role": "user", "content": f"question {n}"}]}
        record.response_text = f"answer {n}"
        rows.append(record.to_row())
    TraceRepository(db).insert_many(rows)


def _score(scorer: HumanScorer, **fields: Any) -> Score:
    return asyncio.run(scorer.score(ScoreInput(output="x", **fields)))


def test_human_is_the_mean_feedback_of_the_trace_with_thumbs_as_1_and_0(db: Engine) -> None:
    _traces(db, 4)
    traces = TraceService(TraceRepository(db), KeyRepository(db))
    traces.add_feedback(_trace_id(1), FeedbackInput(score=0.8))
    traces.add_feedback(_trace_id(1), FeedbackInput(thumb="down"))
    traces.add_feedback(_trace_id(1), FeedbackInput(label="odd", comment="labels and comments do not count"))
    traces.add_feedback(_trace_id(2), FeedbackInput(thumb="up"))
    traces.add_feedback(_trace_id(2), FeedbackInput(score=0.5, thumb="down"))  # the score wins
    traces.add_feedback(_trace_id(3), FeedbackInput(comment="no score"))
    scorer = ScorerRegistry(load_plugins=False).create("human", ScorerResources(engine=db))
    assert isinstance(scorer, HumanScorer)
    assert scorer.name == "human"
    first = _score(scorer, trace={"trace_id": _trace_id(1)})
    assert first.value == pytest.approx(0.4)
    assert first.raw == {"trace_id": _trace_id(1), "feedback": [0.8, 0.0]}
    assert _score(scorer, trace={"trace_id": _trace_id(2)}).value == pytest.approx(0.75)
    for trace in ({"trace_id": _trace_id(3)}, {"trace_id": _trace_id(4)}):
        assert _score(scorer, trace=trace) == Score(
            None, "no scored feedback on the trace", {"trace_id": trace["trace_id"]}
        )
    assert _score(scorer) == Score(None, "no trace: human feedback is given on traces")


@pytest.fixture
def annotation(db: Engine) -> AnnotationService:
    datasets = DatasetService(db)
    datasets.create_version("qa", ROWS, operation="import")
    return AnnotationService(db, datasets)


def _answer_all(service: AnnotationService, queue: str, annotator: str, scores: list[float | None]) -> None:
    for score in scores:
        item = service.next_item(queue, annotator)
        assert item is not None
        if score is None:
            service.skip(queue, item.id, annotator)
        else:
            service.submit(queue, item.id, annotator, score=score)


def test_human_queue_is_the_mean_annotation_score_of_the_row_on_0_to_1(
    db: Engine, annotation: AnnotationService
) -> None:
    schema = LabelSchema(categories=("good", "bad"), score_min=1, score_max=5)
    annotation.create_queue("review", schema, dataset="qa@1", annotators_per_item=2)
    _answer_all(annotation, "review", "ann", [5, 2, None])
    _answer_all(annotation, "review", "bob", [4, 3])
    item = annotation.next_item("review", "cyd")  # the third row: labelled, not scored
    assert item is not None
    annotation.submit("review", item.id, "cyd", label="good")
    scorer = HumanScorer("review", ScorerResources(engine=db))
    first = _score(scorer, row=ROWS[0])
    assert first.value == pytest.approx((4.5 - 1) / 4)
    assert first.raw == {"queue": "review", "mean": 4.5, "answers": 2, "scale": [1.0, 5.0]}
    assert _score(scorer, row=ROWS[1]).value == pytest.approx(0.375)
    assert _score(scorer, row=ROWS[2]) == Score(None, "no annotation score for this row in queue 'review'")
    assert _score(scorer, row={"input": "never annotated"}).value is None


def test_in_a_queue_of_traces_the_item_of_the_same_trace_counts(
    db: Engine, annotation: AnnotationService
) -> None:
    _traces(db, 2)
    schema = LabelSchema(score_min=0, score_max=10)
    annotation.create_queue("traffic", schema, traces=TraceSelection(model="model-a"))
    _answer_all(annotation, "traffic", "ann", [7, 3])
    scorer = HumanScorer("traffic", ScorerResources(engine=db))
    evaluated = {"input": "question 2, as the evaluation's row has it"}
    assert _score(scorer, row=evaluated, trace={"trace_id": _trace_id(2)}).value == pytest.approx(0.3)
    assert _score(scorer, row=evaluated).value is None


def test_human_queue_mistakes_are_user_errors(db: Engine, annotation: AnnotationService) -> None:
    annotation.create_queue("labels-only", LabelSchema(categories=("good", "bad")), dataset="qa@1")
    with pytest.raises(BadScorerArg, match="'labels-only' asks for no score"):
        HumanScorer("labels-only", ScorerResources(engine=db))
    with pytest.raises(QueueNotFound, match="no annotation queue named 'nope'"):
        HumanScorer("nope", ScorerResources(engine=db))
    with pytest.raises(MissingResource, match="needs the database"):
        ScorerRegistry(load_plugins=False).create("human:labels-only", ScorerResources())
