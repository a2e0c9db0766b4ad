"""Running an evaluation: every item's output (asked of the target, or read), every score, stored.

Items stream from the dataset version; at most ``concurrency`` are in flight; results are written in
batches, so an interrupted run keeps what it finished and :meth:`EvalRunner.run` on the same run skips
the positions already stored (resume). A failing call or scorer is that item's error or that score's
None, never the run's end; a cancel (raised by the progress callback) stops the run between items.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llmops.evals.calls import ChatRequest, ChatResult, ModelCaller
from llmops.evals.repository import EvalRepository
from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.targets import Target
from llmops.progress import Progress, no_progress

log = logging.getLogger("llmops.evals")

WRITE_EVERY_ITEMS = 100
WRITE_EVERY_SECONDS = 1.0


@dataclass(frozen=True)
class Item:
    """One row to evaluate: its position in the version (or in the trace selection), hash and content."""

    position: int
    row_hash: str | None
    row: dict[str, Any]
    trace: dict[str, Any] | None = None  # for outputs read from traces: id, latency, tokens, cost


@dataclass
class NamedScorer:
    spec: str  # as given: "rouge_l", "judge:relevance"
    scorer: Any  # llmops.evals.scorers.registry.Scorer


@dataclass
class _Batch:
    rows: list[dict[str, Any]] = field(default_factory=list)
    written_at: float = field(default_factory=time.monotonic)


class EvalRunner:
    def __init__(
        self,
        repository: EvalRepository,
        target: Target,
        scorers: list[NamedScorer],
        *,
        caller: ModelCaller | None,
        concurrency: int = 8,
        progress: Progress = no_progress,
    ) -> None:
        self._repository = repository
        self._target = target
        self._scorers = scorers
        self._caller = caller
        self._concurrency = concurrency
        self._progress = progress

    async def run(self, run_id: str, items: Iterable[Item], total: int | None) -> int:
        """Evaluate the items not stored yet; returns the number of items stored for the run."""
        done = self._repository.done_positions(run_id)
        batch = _Batch()
        stored = len(done)
        gate = asyncio.Semaphore(self._concurrency)
        pending: set[asyncio.Task[dict[str, Any]]] = set()
        self._progress("evaluating", stored, total)
        try:
            for item in _skipping(items, done):
                await gate.acquire()
                task = asyncio.ensure_future(self._evaluate(run_id, item))
                task.add_done_callback(lambda _: gate.release())
                pending.add(task)
                finished = {task for task in pending if task.done()}
                pending -= finished
                stored = await self._collect(run_id, finished, batch, stored, total)
            while pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                stored = await self._collect(run_id, finished, batch, stored, total)
        finally:
            for task in pending:
                task.cancel()
            if pending:
                finished, _ = await asyncio.wait(pending)
                batch.rows.extend(
                    task.result() for task in finished if not task.cancelled() and not task.exception()
                )
            stored = await self._flush(batch, stored)
        self._progress("evaluating", stored, total)
        return stored

    async def _collect(
        self,
        run_id: str,
        finished: set[asyncio.Task[dict[str, Any]]],
        batch: _Batch,
        stored: int,
        total: int | None,
    ) -> int:
        for task in finished:
            batch.rows.append(task.result())
        due = (
            len(batch.rows) >= WRITE_EVERY_ITEMS or time.monotonic() - batch.written_at >= WRITE_EVERY_SECONDS
        )
        if due and batch.rows:
            stored = await self._flush(batch, stored)
        if finished:
            # raises Cancelled when the job was cancelled; what is in the batch is written on the way out
            self._progress("evaluating", stored + len(batch.rows), total)
        return stored

    async def _flush(self, batch: _Batch, stored: int) -> int:
        if batch.rows:
            rows, batch.rows = batch.rows, []
            stored = await asyncio.to_thread(self._repository.add_results, rows)
        batch.written_at = time.monotonic()
        return stored

    async def _evaluate(self, run_id: str, item: Item) -> dict[str, Any]:
        result = await self._output(item)
        scores: dict[str, float | None] = {}
        details: dict[str, Any] = {}
        given = _score_input(item, result)
        for named in self._scorers:
            if result.text is None and getattr(named.scorer, "requires_output", True):
                continue  # a failed call has no output to score; latency and cost still have values
            score = await _safely(named, given)
            scores[named.spec] = score.value
            if score.reasoning is not None or score.raw is not None:
                details[named.spec] = {"reasoning": score.reasoning, "raw": score.raw}
        return {
            "run_id": run_id,
            "position": item.position,
            "row_hash": item.row_hash,
            "output": result.text,
            "scores": scores,
            "details": details or None,
            "latency_ms": result.latency_ms,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "cost": result.cost,
            "trace_id": result.trace_id,
            "error": result.error,
            "created_at": datetime.now(UTC),
        }

    async def _output(self, item: Item) -> ChatResult:
        """The item's output: read (a column, a trace) or asked of the target through the caller."""
        read = self._target.read_output(item.row, item.trace)
        if read is not None:
            return read
        request = self._target.request(item.row)
        if isinstance(request, str):
            return ChatResult(None, error=request)
        assert self._caller is not None  # a target that asks a model has a caller (checked at start)
        return await self._caller(request)


def _skipping(items: Iterable[Item], done: set[int]) -> Iterator[Item]:
    return (item for item in items if item.position not in done)


async def _safely(named: NamedScorer, given: ScoreInput) -> Score:
    try:
        found = await named.scorer.score(given)
    except Exception as exc:  # one scorer's failure is this score's None, logged; the run goes on
        log.warning("scorer %s failed: %s: %s", named.spec, type(exc).__name__, exc)
        return Score(None, reasoning=f"scorer failed: {type(exc).__name__}: {exc}")
    return found if isinstance(found, Score) else Score(None if found is None else float(found))


def _score_input(item: Item, result: ChatResult) -> ScoreInput:
    row = item.row
    metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else None
    trace = dict(item.trace or {})
    if result.trace_id is not None:
        trace.setdefault("trace_id", result.trace_id)
    return ScoreInput(
        output=result.text,
        expected=row.get("expected", row.get("completion")),
        input=row.get("input") if isinstance(row.get("input"), str) else None,
        messages=row.get("messages") if isinstance(row.get("messages"), list) else None,
        variables=row.get("variables") if isinstance(row.get("variables"), dict) else None,
        context=row.get("context") if isinstance(row.get("context"), str) else None,
        row=row,
        metadata=metadata,
        trace=trace or None,
        latency_ms=result.latency_ms,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        cost=result.cost,
    )


def chat_request(model: str, row: dict[str, Any], params: dict[str, Any]) -> ChatRequest | str:
    """What a row sends: its messages, or its input as one user message (a string: why it cannot)."""
    messages = row.get("messages")
    if isinstance(messages, list) and messages:
        return ChatRequest(model, messages, params)
    text = row.get("input")
    if isinstance(text, str):
        return ChatRequest(model, [{"role": "user", "content": text}], params)
    return "the row has neither messages nor an input to send"
