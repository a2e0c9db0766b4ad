"""Prompt references resolved once and kept in memory, so the gateway's request path reads no database.

A reference (``NAME``, ``NAME@LABEL``, ``NAME#VERSION``) is resolved the first time a request names
it, in a worker thread: the version it points at (content, model, parameters), and the experiment
running on that prompt and label with every variant's version. Later requests find it in a dict.
Unknown references are remembered too (until the next change), so a client repeating a wrong name
costs one query, not one per request.

Invalidation: a background task reads the registry's change counter
(:meth:`PromptService.revision`, bumped in the same transaction as every version, label or
experiment change) every ``prompt_refresh_seconds`` and drops everything when it moved. Every
replica polls the shared database, so a label moved through one replica is served by all of them
within about that time. A load that was under way when the cache was dropped is used by the
requests that waited for it but not kept.

Errors: :class:`PromptNotFound` and :class:`InvalidPrompt` from :mod:`llmops.prompts.services`;
:class:`RenderError` from :meth:`ResolvedVersion.render`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmops.prompts.experiments import Experiment, ExperimentService, Variant, assign
from llmops.prompts.services import (
    DEFAULT_LABEL,
    InvalidPrompt,
    PromptNotFound,
    PromptService,
    PromptVersion,
    Reference,
    parse_reference,
)
from llmops.prompts.spec import PromptContent
from llmops.prompts.templates import Rendered, render
from llmops.store.scope import TeamScope, sees

log = logging.getLogger("llmops.prompts")

MAX_ENTRIES = 10_000  # references kept; past that the cache starts over (a client inventing names)


@dataclass(frozen=True, slots=True)
class ResolvedVersion:
    """One version as the request path needs it."""

    name: str
    number: int
    content: PromptContent
    model: str | None
    parameters: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.content.kind

    def render(self, variables: dict[str, Any] | None) -> Rendered:
        """Raises RenderError (one line naming the variable or the template line)."""
        return render(self.content, variables)

    @classmethod
    def of(cls, version: PromptVersion) -> ResolvedVersion:
        content = version.content
        return cls(version.name, version.number, content, content.model, dict(content.parameters))


@dataclass(frozen=True, slots=True)
class RunningExperiment:
    """An experiment on a prompt and label, with each variant's version loaded."""

    id: str
    name: str
    sticky_by: str  # user | header
    variants: tuple[Variant, ...]
    versions: dict[int, ResolvedVersion]

    def pick(self, subject: str | None, rng: random.Random) -> tuple[Variant, ResolvedVersion]:
        """The subject's variant (sticky: :func:`~llmops.prompts.experiments.assign`) and its version."""
        variant = assign(self.id, subject, self.variants, rng)
        return variant, self.versions[variant.version]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a reference means right now.

    ``label`` is the label the request went through: the one it named, ``production`` for a bare
    name when that label exists or an experiment runs on it, None for ``#VERSION`` or for a bare
    name served by the latest version. ``version`` is None only when an experiment serves a label
    that points nowhere; ``experiment`` is never set for an explicit ``#VERSION``.
    """

    name: str
    label: str | None
    version: ResolvedVersion | None
    experiment: RunningExperiment | None = None
    team_id: str | None = None  # the prompt's team: a key of another team must not use it

    def visible_to(self, team: TeamScope) -> bool:
        """Whether a caller of ``team`` (see :mod:`llmops.store.scope`) may use the prompt."""
        return sees(team, self.team_id)


@dataclass(frozen=True, slots=True)
class _Failure:
    """A reference that does not resolve, remembered until the next change."""

    not_found: bool
    message: str

    def error(self) -> Exception:
        return PromptNotFound(self.message) if self.not_found else InvalidPrompt(self.message)


class PromptResolver:
    def __init__(
        self,
        prompts: PromptService,
        experiments: ExperimentService,
        *,
        refresh_seconds: float,
        revision: Callable[[], int] | None = None,
    ) -> None:
        self._prompts = prompts
        self._experiments = experiments
        self._refresh_seconds = refresh_seconds
        self._read_revision = revision or prompts.revision
        self._entries: dict[str, Resolution | _Failure] = {}
        self._pending: dict[str, asyncio.Future[Resolution | _Failure]] = {}
        self._generation = 0  # bumped by every drop: loads begun before it are not kept
        self._revision: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._poll_failing = False
        self.loads = 0  # references loaded from the database (for tests and the benchmark)

    # -- the request path ------------------------------------------------------------------------

    def cached(self, reference: str) -> Resolution | None:
        """The reference from memory, or None when it must be loaded (raises when known bad)."""
        entry = self._entries.get(reference)
        if isinstance(entry, _Failure):
            raise entry.error()
        return entry

    async def resolve(self, reference: str) -> Resolution:
        """From memory; loaded in a worker thread on a miss (concurrent misses share one load)."""
        found = self.cached(reference)
        if found is not None:
            return found
        pending = self._pending.get(reference)
        if pending is None:
            pending = self._pending[reference] = asyncio.ensure_future(self._load(reference))
            pending.add_done_callback(lambda done: self._forget(reference, done))
        entry = await asyncio.shield(pending)  # one caller going away does not cancel the others' load
        if isinstance(entry, _Failure):
            raise entry.error()
        return entry

    def _forget(self, reference: str, done: asyncio.Future[Resolution | _Failure]) -> None:
        if self._pending.get(reference) is done:
            del self._pending[reference]

    async def _load(self, reference: str) -> Resolution | _Failure:
        generation = self._generation
        entry = await asyncio.to_thread(self._lookup, reference)
        if generation == self._generation:  # nothing changed while it loaded: keep it
            if len(self._entries) >= MAX_ENTRIES:
                self._entries = {}
            self._entries[reference] = entry
        return entry

    def _lookup(self, text: str) -> Resolution | _Failure:
        """Blocking: the reference's version, and the experiment with its versions (worker thread)."""
        self.loads += 1
        try:
            return self._resolution(parse_reference(text))
        except PromptNotFound as exc:
            return _Failure(True, str(exc))
        except InvalidPrompt as exc:
            return _Failure(False, str(exc))

    def _resolution(self, ref: Reference) -> Resolution:
        team_id = self._prompts.owner(ref.name)
        if ref.version is not None:  # an explicit version never takes part in an experiment
            return Resolution(ref.name, None, ResolvedVersion.of(self._prompts.get(ref)), team_id=team_id)
        label = ref.label or DEFAULT_LABEL
        experiment = self._experiments.running_for(ref.name, label)
        running = self._running(experiment) if experiment is not None else None
        try:
            version: PromptVersion | None = self._prompts.get(ref)
        except PromptNotFound:
            if running is None or ref.label is None:
                raise
            version = None  # the label points nowhere, but the experiment on it serves every request
        used: str | None = label
        if ref.label is None and running is None and version is not None and label not in version.labels:
            used = None  # a bare name without a production label: served by the latest version
        resolved = ResolvedVersion.of(version) if version is not None else None
        return Resolution(ref.name, used, resolved, running, team_id)

    def _running(self, experiment: Experiment) -> RunningExperiment:
        versions = {
            variant.version: ResolvedVersion.of(
                self._prompts.get(Reference(experiment.prompt, version=variant.version))
            )
            for variant in experiment.variants
        }
        return RunningExperiment(
            experiment.id, experiment.name, experiment.sticky_by, experiment.variants, versions
        )

    # -- invalidation ------------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Drop everything resolved so far (loads under way are not kept either)."""
        self._generation += 1
        self._entries = {}
        self._pending = {}  # later misses start fresh loads instead of joining older ones

    async def refresh(self) -> bool:
        """Read the registry's change counter once; drop the cache when it moved. True if dropped."""
        revision = await asyncio.to_thread(self._read_revision)
        if revision == self._revision:
            return False
        self._revision = revision
        self.invalidate()
        return True

    async def start(self) -> None:
        """Read the current revision, then poll it every ``refresh_seconds`` until :meth:`stop`."""
        try:
            await self.refresh()
        except Exception:  # boundary: a database down at start must not stop the server
            log.exception("could not read the prompt registry's revision; will retry")
        self._task = asyncio.create_task(self._poll_forever(), name="llmops-prompt-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # the cancellation asked for just above
                await self._task
            self._task = None

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # boundary: keep serving what is cached; say so once per outage
                if not self._poll_failing:
                    log.warning("prompt registry unreachable (%s); serving the cached prompts", exc)
                self._poll_failing = True
            else:
                if self._poll_failing:
                    log.info("prompt registry reachable again")
                self._poll_failing = False
