"""Human scores as a metric: feedback on an item's trace, or answers in an annotation queue.

- ``human``: the mean feedback of the item's trace (``ScoreInput.trace["trace_id"]``): a feedback's
  ``score`` as given, else its thumb (up 1.0, down 0.0); feedback with only a label or a comment does
  not count. None when the item has no trace or its trace no scored feedback.
- ``human:QUEUE``: the mean annotation score given in queue QUEUE to the item whose row hash equals the
  evaluated row's hash (or, in a queue made from traces, whose trace is the item's trace), normalised
  to 0..1 by the queue's score range. None when nobody scored that row. The queue's answers are read
  once, on the first item, so a run sees one consistent snapshot of them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from llmops.annotation.schema import LabelSchema
from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.registry import RESOURCE_HINTS, BadScorerArg, MissingResource, Scorer
from llmops.store.tables import feedback

if TYPE_CHECKING:
    from llmops.evals.scorers.registry import ScorerResources

THUMBS = {"up": 1.0, "down": 0.0}


def _engine(resources: ScorerResources) -> Engine:
    if resources.engine is None:
        raise MissingResource(f"human scores need {RESOURCE_HINTS['engine']}")
    return resources.engine


def trace_id_of(item: ScoreInput) -> str | None:
    trace = item.trace or {}
    found = trace.get("trace_id") or trace.get("id")
    return str(found) if found else None


def feedback_values(engine: Engine, trace_id: str) -> list[float]:
    """One number per scored feedback on the trace: its score, else its thumb."""
    query = select(feedback.c.score, feedback.c.thumb).where(feedback.c.trace_id == trace_id)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    values = []
    for score, thumb in rows:
        if score is not None:
            values.append(float(score))
        elif thumb in THUMBS:
            values.append(THUMBS[thumb])
    return values


class HumanScorer(Scorer):
    """``human`` (trace feedback) or ``human:QUEUE`` (annotation scores)."""

    higher_is_better = True
    requires_output = False
    needs = frozenset({"engine"})
    arg_use = "optional"

    def __init__(self, arg: str | None = None, resources: ScorerResources | None = None) -> None:
        self.name = f"human:{arg}" if arg else "human"
        super().__init__(arg, resources)
        self._engine = _engine(self.resources)
        self._queue = _QueueScores(self._engine, arg) if arg else None

    async def score(self, item: ScoreInput) -> Score:
        if self._queue is not None:
            return await self._queue.score(item)
        trace_id = trace_id_of(item)
        if trace_id is None:
            return Score(None, "no trace: human feedback is given on traces")
        values = await asyncio.to_thread(feedback_values, self._engine, trace_id)
        if not values:
            return Score(None, "no scored feedback on the trace", {"trace_id": trace_id})
        return Score(sum(values) / len(values), None, {"trace_id": trace_id, "feedback": values})


def _queue_schema(engine: Engine, queue: str) -> LabelSchema:
    from llmops.annotation.models import QueueNotFound
    from llmops.annotation.tables import annotation_queues

    with engine.connect() as connection:
        stored = connection.execute(
            select(annotation_queues.c.label_schema).where(annotation_queues.c.name == queue)
        ).scalar()
    if stored is None:
        raise QueueNotFound(f"no annotation queue named {queue!r}", param="metric")
    return LabelSchema.from_dict(stored)


@dataclass(frozen=True)
class _Scored:
    mean: float  # on the queue's scale
    count: int


class _QueueScores:
    """One annotation queue's mean scores by row hash and by trace id, loaded on first use."""

    def __init__(self, engine: Engine, queue: str) -> None:
        schema = _queue_schema(engine, queue)
        if schema.score_min is None or schema.score_max is None:
            raise BadScorerArg(f"human:{queue}: annotation queue {queue!r} asks for no score")
        self._engine = engine
        self._name = queue
        self._low, self._high = schema.score_min, schema.score_max
        self._loaded: tuple[dict[str, _Scored], dict[str, _Scored]] | None = None
        self._lock = asyncio.Lock()

    async def score(self, item: ScoreInput) -> Score:
        from llmops.datasets.rows import row_hash

        by_hash, by_trace = await self._load()
        digest = row_hash(item.row) if item.row else None
        trace_id = trace_id_of(item)
        found = by_hash.get(digest) if digest else None
        if found is None and trace_id is not None:
            found = by_trace.get(trace_id)
        if found is None:
            return Score(None, f"no annotation score for this row in queue {self._name!r}")
        raw: dict[str, Any] = {
            "queue": self._name,
            "mean": found.mean,
            "answers": found.count,
            "scale": [self._low, self._high],
        }
        return Score((found.mean - self._low) / (self._high - self._low), None, raw)

    async def _load(self) -> tuple[dict[str, _Scored], dict[str, _Scored]]:
        async with self._lock:
            if self._loaded is None:
                self._loaded = await asyncio.to_thread(self._read)
            return self._loaded

    def _read(self) -> tuple[dict[str, _Scored], dict[str, _Scored]]:
        from llmops.annotation.tables import annotation_answers, annotation_items

        maps: tuple[dict[str, _Scored], dict[str, _Scored]] = ({}, {})
        with self._engine.connect() as connection:
            for key, target in zip(
                (annotation_items.c.row_hash, annotation_items.c.trace_id), maps, strict=True
            ):
                query = (
                    select(key, func.avg(annotation_answers.c.score), func.count(annotation_answers.c.score))
                    .join(annotation_items, annotation_items.c.id == annotation_answers.c.item_id)
                    .where(
                        annotation_answers.c.queue == self._name,
                        annotation_answers.c.score.is_not(None),
                        key.is_not(None),
                    )
                    .group_by(key)
                )
                for value, mean, count in connection.execute(query):
                    target[str(value)] = _Scored(float(mean), int(count))
        return maps
