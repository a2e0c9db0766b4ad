"""DriftService: compare a current window of traffic with a reference, store the result, score it.

:meth:`DriftService.run` samples both sides (:mod:`llmops.drift.features`), runs the checks
(:mod:`llmops.drift.checks`) and returns the report as a JSON-ready dict (times as ISO text), stored in
``drift_check`` unless ``save=False``. :meth:`DriftService.score` is what alert rules call for their
``drift_score`` statistic: the overall score and each check's p-value, reusing a stored check younger
than ``max_age`` when one exists. A service scoped to a team (:meth:`for_team`) reads that team's traces
and datasets only, and sees only the checks its team ran.

The MiniLM embedder and the language identifier load on first use and are shared by the team-scoped
copies of one service. A check runs in the calling thread (the admin API runs it in a worker thread):
on two cores, 1,000 prompts a side take about two seconds, most of it embedding.

Errors: :class:`DriftError` (400) for a bad request (window, prompt, sample, alpha, seed, check name),
:class:`DriftCheckNotFound` (404), and the datasets' ``DatasetNotFound`` for an unknown reference.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select

from llmops.datasets.service import DatasetService
from llmops.drift.checks import (
    CHECK_NAMES,
    MULTIPLE_TESTING_NOTE,
    CheckContext,
    CheckOptions,
    Embedder,
    LanguageIdentifier,
    overall,
    run_checks,
)
from llmops.drift.features import Sample, TraceFilter, Window, parse_window, sample_rows, trace_sample
from llmops.drift.tables import drift_checks
from llmops.errors import NotFoundError, UserError
from llmops.ids import new_id
from llmops.store.scope import ALL_TEAMS, TeamScope, owned_by, owner_of_new, sees

__all__ = ["DriftCheckNotFound", "DriftError", "DriftRequest", "DriftScore", "DriftService"]

DEFAULT_REFERENCE = "7d..1d"
MIN_SAMPLE, MAX_SAMPLE = 20, 100_000
MIN_PERMUTATIONS, MAX_PERMUTATIONS = 99, 100_000
MAX_LIST = 500
MAX_SEED = 2**32 - 1  # numpy's generators take no negative seed
_PROMPT = re.compile(r"(?P<name>[^@\x00]{1,200})(?:@(?P<version>[0-9]{1,9}))?")
_CHECK_ID = re.compile(r"[0-9a-f]{32}")


class DriftError(UserError):
    """A drift request that cannot be run as asked."""


class DriftCheckNotFound(NotFoundError):
    """No stored drift check has this id (or the caller's team cannot see it)."""


@dataclass(frozen=True)
class DriftRequest:
    """What to compare. ``reference`` is a window (``7d..1d``) unless ``dataset`` (``NAME@V``) is given."""

    current: str = "1d"
    reference: str | None = None  # default: 7d..1d, when no dataset is given
    dataset: str | None = None
    model: str | None = None
    prompt: str | None = None  # NAME or NAME@VERSION
    sample: int | None = None  # traces drawn per side; default: the service's
    seed: int = 0
    alpha: float | None = None
    checks: tuple[str, ...] | None = None
    permutations: int | None = None


@dataclass(frozen=True)
class DriftScore:
    """What an alert rule reads: the overall score, whether any check is in drift, and each p-value."""

    score: float
    drifted: bool
    p_values: dict[str, float | None]
    check_id: str
    created_at: datetime


@dataclass
class _Shared:
    """Loaded once per service and shared by its team-scoped copies."""

    embedder: Callable[[], Embedder | None]
    lock: threading.Lock = field(default_factory=threading.Lock)
    languages: LanguageIdentifier | None = None
    embedder_value: Embedder | None = None
    embedder_loaded: bool = False

    def language_identifier(self) -> LanguageIdentifier:
        with self.lock:
            if self.languages is None:
                from llmops.datasets.language import LanguageDetector

                self.languages = LanguageDetector(min_chars=12)
            return self.languages

    def the_embedder(self) -> Embedder | None:
        with self.lock:
            if not self.embedder_loaded:
                self.embedder_value = self.embedder()
                self.embedder_loaded = True
            return self.embedder_value


def packaged_embedder(threads: int | None = None) -> Embedder | None:
    """The embedded all-MiniLM-L6-v2 (loaded by its first call), or None without the ``local`` extra."""
    import importlib.util
    import os

    from llmops.providers.local import default_minilm

    files = default_minilm()
    if files is None or any(importlib.util.find_spec(name) is None for name in ("numpy", "onnxruntime")):
        return None
    from llmops.evals.scorers.embedding import PackagedMiniLM

    return PackagedMiniLM(*files, threads=threads or os.cpu_count() or 1)


class DriftService:
    def __init__(
        self,
        engine: Engine,
        datasets: DatasetService,
        *,
        alpha: float = 0.01,
        sample: int = 1000,
        permutations: int = 1000,
        embedder: Callable[[], Embedder | None] = packaged_embedder,
        team: TeamScope = ALL_TEAMS,
        shared: _Shared | None = None,
    ) -> None:
        self.engine = engine
        self.datasets = datasets
        self.alpha = alpha
        self.sample = sample
        self.permutations = permutations
        self.team = team
        self._shared = shared or _Shared(embedder)

    def for_team(self, team: TeamScope) -> DriftService:
        """The same service as a caller of ``team`` sees it (:data:`ALL_TEAMS`: everything)."""
        if team == self.team:
            return self
        return DriftService(
            self.engine,
            self.datasets.for_team(team),
            alpha=self.alpha,
            sample=self.sample,
            permutations=self.permutations,
            team=team,
            shared=self._shared,
        )

    # -- running -------------------------------------------------------------------------------

    def run(self, request: DriftRequest, *, save: bool = True, now: datetime | None = None) -> dict[str, Any]:
        """Compare the two sides; the report as a JSON-ready dict (stored when ``save``)."""
        now = now or datetime.now(UTC)
        options = self._options(request)
        size = request.sample or self.sample
        name, version = _parse_prompt(request.prompt)
        current_window = parse_window(request.current, now, param="current")
        current = trace_sample(
            self.engine,
            TraceFilter(current_window, request.model, name, version, self.team),
            size,
            request.seed,
        )
        reference, reference_side = self._reference(request, now, size, name, version)
        context = CheckContext(
            reference,
            current,
            options,
            embedder=self._shared.the_embedder,
            languages=self._shared.language_identifier,
        )
        results = run_checks(context)
        score, drifted = overall(results)
        report: dict[str, Any] = {
            "id": new_id(),
            "created_at": now,
            "model": request.model,
            "prompt": request.prompt,
            "reference": reference_side,
            "current": _side(current, window=current_window),
            "alpha": options.alpha,
            "seed": request.seed,
            "sample": size,
            "score": score,
            "drifted": drifted,
            "checks": [result.as_dict() for result in results],
            "note": MULTIPLE_TESTING_NOTE,
        }
        report = orjson.loads(orjson.dumps(report, option=orjson.OPT_SERIALIZE_NUMPY))
        if save:
            self._save(report, request, now)
        return report

    def _options(self, request: DriftRequest) -> CheckOptions:
        alpha = self.alpha if request.alpha is None else request.alpha
        if not 0.0 < alpha < 1.0:
            raise DriftError(f"alpha: must be between 0 and 1 (exclusive), got {alpha}", param="alpha")
        size = request.sample or self.sample
        if not MIN_SAMPLE <= size <= MAX_SAMPLE:
            raise DriftError(f"sample: must be {MIN_SAMPLE} to {MAX_SAMPLE}, got {size}", param="sample")
        permutations = request.permutations or self.permutations
        if not MIN_PERMUTATIONS <= permutations <= MAX_PERMUTATIONS:
            raise DriftError(
                f"permutations: must be {MIN_PERMUTATIONS} to {MAX_PERMUTATIONS}, got {permutations}",
                param="permutations",
            )
        if not 0 <= request.seed <= MAX_SEED:
            raise DriftError(f"seed: must be 0 to {MAX_SEED}, got {request.seed}", param="seed")
        unknown = sorted(set(request.checks or ()) - set(CHECK_NAMES))
        if unknown:
            raise DriftError(
                f"checks: unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECK_NAMES)}",
                param="checks",
            )
        checks = tuple(dict.fromkeys(request.checks)) if request.checks else None
        return CheckOptions(alpha=alpha, permutations=permutations, seed=request.seed, checks=checks)

    def _reference(
        self, request: DriftRequest, now: datetime, size: int, name: str | None, version: int | None
    ) -> tuple[Sample, dict[str, Any]]:
        if request.dataset is not None:
            if request.reference is not None:
                raise DriftError("give a reference window or a dataset, not both", param="dataset")
            found = self.datasets.resolve(request.dataset)
            sample = sample_rows(self.datasets.rows(found), size, request.seed)
            return sample, _side(sample, dataset=f"{found.dataset}@{found.number}")
        window = parse_window(request.reference or DEFAULT_REFERENCE, now, param="reference")
        where = TraceFilter(window, request.model, name, version, self.team)
        sample = trace_sample(self.engine, where, size, request.seed)
        return sample, _side(sample, window=window)

    def score(
        self,
        *,
        model: str | None = None,
        prompt: str | None = None,
        reference: str | None = DEFAULT_REFERENCE,
        current: str = "1d",
        dataset: str | None = None,
        max_age: timedelta | None = None,
        now: datetime | None = None,
    ) -> DriftScore:
        """The drift score of ``current`` against ``reference`` (or ``dataset``) for a model or prompt.

        With ``max_age``, a stored check of the same request younger than that is reused (a check
        embeds prompts: an alert evaluated every 30 s should not run one every time).
        """
        now = now or datetime.now(UTC)
        if dataset is not None:
            reference = None
        if max_age is not None:
            stored = self._latest(model, prompt, _reference_key(reference, dataset), current, now - max_age)
            if stored is not None:
                return stored
        report = self.run(
            DriftRequest(current=current, reference=reference, dataset=dataset, model=model, prompt=prompt),
            now=now,
        )
        return _score_of(report)

    # -- storing -------------------------------------------------------------------------------

    def _save(self, report: dict[str, Any], request: DriftRequest, now: datetime) -> None:
        reference = _reference_key(request.reference, request.dataset)
        with self.engine.begin() as connection:
            connection.execute(
                insert(drift_checks).values(
                    id=report["id"],
                    created_at=now,
                    team_id=owner_of_new(self.team),
                    model=request.model,
                    prompt=request.prompt,
                    reference=reference[:400],
                    current=request.current[:400],
                    alpha=report["alpha"],
                    score=report["score"],
                    drifted=report["drifted"],
                    traces=report["current"]["traces"],
                    p_values={check["name"]: check["p_value"] for check in report["checks"]},
                    report=report,
                )
            )

    def _latest(
        self, model: str | None, prompt: str | None, reference: str, current: str, since: datetime
    ) -> DriftScore | None:
        query = (
            select(drift_checks.c.id, drift_checks.c.created_at, drift_checks.c.report)
            .where(
                _equal(drift_checks.c.model, model),
                _equal(drift_checks.c.prompt, prompt),
                drift_checks.c.reference == reference,
                drift_checks.c.current == current,
                drift_checks.c.created_at >= since,
                *owned_by(drift_checks.c.team_id, self.team),
            )
            .order_by(drift_checks.c.created_at.desc())
            .limit(1)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _score_of(_json(row.report))

    def list_checks(
        self, *, model: str | None = None, prompt: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Stored checks, newest first: when, for what, the score and each check's p-value."""
        if not 1 <= limit <= MAX_LIST:
            raise DriftError(f"limit: must be 1 to {MAX_LIST}, got {limit}", param="limit")
        columns = [column for column in drift_checks.c if column.name not in ("report", "team_id")]
        query = select(*columns).where(*owned_by(drift_checks.c.team_id, self.team))
        if model is not None:
            query = query.where(drift_checks.c.model == model)
        if prompt is not None:
            query = query.where(drift_checks.c.prompt == prompt)
        query = query.order_by(drift_checks.c.created_at.desc(), drift_checks.c.id.desc()).limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [{**row._mapping, "p_values": _json(row.p_values)} for row in rows]

    def get_check(self, check_id: str) -> dict[str, Any]:
        """The stored report of one check."""
        if _CHECK_ID.fullmatch(check_id):
            with self.engine.connect() as connection:
                row = connection.execute(
                    select(drift_checks.c.team_id, drift_checks.c.report).where(drift_checks.c.id == check_id)
                ).first()
            if row is not None and sees(self.team, row.team_id):
                found: dict[str, Any] = _json(row.report)
                return found
        raise DriftCheckNotFound(f"no drift check {check_id!r}", param="check_id")


def _side(sample: Sample, *, window: Window | None = None, dataset: str | None = None) -> dict[str, Any]:
    side: dict[str, Any] = {"kind": "dataset" if dataset is not None else "window", "dataset": dataset}
    side.update(window.as_dict() if window is not None else {"window": None, "since": None, "until": None})
    side.update(
        traces=sample.total,
        sampled=sample.sampled,
        prompts=len(sample.prompts),
        answers=len(sample.answers),
        without_content=sample.without_content,
    )
    return side


def _reference_key(reference: str | None, dataset: str | None) -> str:
    """How a check's reference is stored: the window's text, or ``dataset:NAME@V``."""
    if dataset is not None:
        return f"dataset:{dataset}"
    return reference or DEFAULT_REFERENCE


def _parse_prompt(prompt: str | None) -> tuple[str | None, int | None]:
    if prompt is None:
        return None, None
    match = _PROMPT.fullmatch(prompt)
    if match is None:
        raise DriftError(f"prompt: expected NAME or NAME@VERSION, got {prompt!r}", param="prompt")
    version = match["version"]
    return match["name"], int(version) if version else None


def _score_of(report: dict[str, Any]) -> DriftScore:
    created = report["created_at"]
    return DriftScore(
        score=float(report["score"]),
        drifted=bool(report["drifted"]),
        p_values={check["name"]: check["p_value"] for check in report["checks"]},
        check_id=str(report["id"]),
        created_at=datetime.fromisoformat(created) if isinstance(created, str) else created,
    )


def _equal(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value
