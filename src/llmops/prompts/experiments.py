"""A/B/n experiments on a prompt: versions as variants with weights, sticky assignment, promote or stop.

While an experiment runs, gateway requests for its prompt at its label (``prompt:NAME`` or
``prompt:NAME@LABEL``; an explicit ``#VERSION`` never takes part) are split between the variants by
weight. Assignment is sticky: a hash of the experiment id and the subject (the request's ``user``
field, or the ``x-llmops-user`` header) picks the variant, so one user always sees one variant; a
request with no subject gets a random one. Promoting the winner moves the label to its version and
ends the experiment; stopping ends it and leaves the label where it was.

Errors: :class:`~llmops.prompts.services.PromptNotFound` (no such experiment, prompt or version: 404)
and its kind :class:`VariantNotFound` (the experiment has no such variant: 404);
:class:`~llmops.prompts.services.InvalidPrompt` (bad name, variants or weights: 400) and its kind
:class:`ExperimentConflict`, a :class:`~llmops.prompts.services.PromptConflict` (the name is taken,
another experiment runs on the label, or the experiment has ended: 409 on the REST API).

An experiment belongs to the team of its prompt: :meth:`ExperimentService.for_team` sees only the
experiments on the prompts that team sees.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, case, insert, select, update
from sqlalchemy.exc import IntegrityError

from llmops.ids import new_id
from llmops.prompts.repository import PromptRepository
from llmops.prompts.services import (
    DEFAULT_LABEL,
    InvalidPrompt,
    PromptConflict,
    PromptNotFound,
    PromptService,
)
from llmops.prompts.spec import MAX_VERSION, valid_label, valid_name
from llmops.prompts.tables import experiment_variants, experiments, prompts
from llmops.store.scope import ALL_TEAMS, TeamScope, owned_by

if TYPE_CHECKING:
    from llmops.prompts.experiment_results import ExperimentResults

RUNNING = "running"
STATUSES = (RUNNING, "promoted", "stopped")
STICKY_BY = ("user", "header")
MAX_VARIANTS = 20
MAX_WEIGHT = 1_000_000.0
MAX_DESCRIPTION = 2000
_VARIANT_SPEC = re.compile(r"^(?P<name>[^=]+)=(?P<version>\d+)(?::(?P<weight>[^:]+))?$")
USER_HEADER = b"x-llmops-user"
_SCALE = float(2**64)


class ExperimentConflict(PromptConflict):
    """The request contradicts the experiment's state: its name is taken, another experiment runs on
    the same prompt and label, or it has ended already."""


class VariantNotFound(PromptNotFound):
    pass


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    version: int
    weight: float


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    name: str
    prompt: str
    label: str
    status: str
    sticky_by: str
    variants: tuple[Variant, ...]
    description: str | None = None
    winner: str | None = None
    created_by: str | None = None
    created_at: Any = None
    ended_at: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prompt": self.prompt,
            "label": self.label,
            "status": self.status,
            "sticky_by": self.sticky_by,
            "variants": [{"name": v.name, "version": v.version, "weight": v.weight} for v in self.variants],
            "description": self.description,
            "winner": self.winner,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "ended_at": self.ended_at,
        }

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise InvalidPrompt(f"experiment {self.name!r} has no variant {name!r}")


def parse_variant(text: str) -> tuple[str, int, float]:
    """``NAME=VERSION`` or ``NAME=VERSION:WEIGHT`` (weight 1 when not given), as the CLI takes them."""
    match = _VARIANT_SPEC.match(text.strip())
    if match is None:
        raise InvalidPrompt(f"variant {text!r}: expected NAME=VERSION or NAME=VERSION:WEIGHT, e.g. b=2:3")
    try:
        weight = float(match["weight"]) if match["weight"] is not None else 1.0
    except ValueError:
        raise InvalidPrompt(f"variant {text!r}: the weight {match['weight']!r} is not a number") from None
    return match["name"].strip(), int(match["version"]), weight


def assign(
    experiment_id: str, subject: str | None, variants: Sequence[Variant], rng: random.Random
) -> Variant:
    """The subject's variant: the same subject always lands on the same one; shares follow the weights."""
    if subject:
        digest = hashlib.blake2b(f"{experiment_id}\x00{subject}".encode(), digest_size=8).digest()
        point = int.from_bytes(digest, "big") / _SCALE
    else:
        point = rng.random()
    total = sum(variant.weight for variant in variants)
    point *= total
    for variant in variants:
        point -= variant.weight
        if point < 0:
            return variant
    return variants[-1]


class ExperimentService:
    def __init__(self, engine: Engine, prompts: PromptService, repository: PromptRepository) -> None:
        self._engine = engine
        self._prompts = prompts
        self._repository = repository  # for the registry's change counter

    def for_team(self, team: TeamScope) -> ExperimentService:
        """The experiments on the prompts a caller of ``team`` sees (:data:`ALL_TEAMS`: all)."""
        if team == self._prompts.team:
            return self
        return ExperimentService(self._engine, self._prompts.for_team(team), self._repository)

    def _visible(self) -> list[Any]:
        """WHERE conditions: the experiment's prompt is one this service's team sees."""
        if self._prompts.team == ALL_TEAMS:
            return []
        visible = select(prompts.c.name).where(*owned_by(prompts.c.team_id, self._prompts.team))
        return [experiments.c.prompt.in_(visible)]

    def create(
        self,
        name: str,
        prompt: str,
        variants: Sequence[tuple[str, int, float]],
        *,
        label: str = DEFAULT_LABEL,
        sticky_by: str = "user",
        description: str | None = None,
        author: str | None = None,
    ) -> Experiment:
        _check_definition(name, label, sticky_by, variants, description, author)
        for _, version, _ in variants:
            self._prompts.get(f"{prompt}#{version}")  # the version exists (PromptNotFound otherwise)
        if self.running_for(prompt, label) is not None:
            raise ExperimentConflict(
                f"an experiment already runs on {prompt}@{label}; stop or promote it first"
            )
        experiment_id = f"exp_{new_id()}"
        now = datetime.now(UTC)
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(experiments).values(
                        id=experiment_id,
                        name=name,
                        prompt=prompt,
                        label=label,
                        status=RUNNING,
                        sticky_by=sticky_by,
                        description=description,
                        created_by=author,
                        created_at=now,
                    )
                )
                connection.execute(
                    insert(experiment_variants),
                    [
                        {"experiment": experiment_id, "name": n, "version": v, "weight": float(w)}
                        for n, v, w in variants
                    ],
                )
                self._repository.bump_revision(connection)
        except IntegrityError:
            raise ExperimentConflict(f"an experiment named {name!r} exists already") from None
        return self.get(experiment_id)

    def get(self, key: str) -> Experiment:
        """By id or name."""
        if not valid_name(key):  # no query for what cannot be a name or an id (NUL, ...)
            raise PromptNotFound(f"experiment {key!r} not found")
        with self._engine.connect() as connection:
            row = connection.execute(
                select(experiments).where(
                    (experiments.c.id == key) | (experiments.c.name == key), *self._visible()
                )
            ).first()
            if row is None:
                raise PromptNotFound(f"experiment {key!r} not found")
            variants = connection.execute(
                select(experiment_variants)
                .where(experiment_variants.c.experiment == row.id)
                .order_by(experiment_variants.c.name)
            ).all()
        return _experiment(dict(row._mapping), variants)

    def find(self, *, prompt: str | None = None, status: str | None = None) -> list[Experiment]:
        """Running ones first, then newest first; optionally only one prompt's, or one status."""
        if prompt is not None and not valid_name(prompt):
            raise InvalidPrompt(f"prompt: {prompt!r} is not a prompt name")
        if status is not None and status not in STATUSES:
            raise InvalidPrompt(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
        query = select(experiments.c.id).order_by(
            case((experiments.c.status == RUNNING, 0), else_=1),
            experiments.c.created_at.desc(),
            experiments.c.id,
        )
        if prompt is not None:
            query = query.where(experiments.c.prompt == prompt)
        if status is not None:
            query = query.where(experiments.c.status == status)
        with self._engine.connect() as connection:
            ids = [row.id for row in connection.execute(query.where(*self._visible()))]
        return [self.get(experiment_id) for experiment_id in ids]

    def running(self) -> list[Experiment]:
        return self.find(status=RUNNING)

    def running_for(self, prompt: str, label: str) -> Experiment | None:
        for experiment in self.find(prompt=prompt, status=RUNNING):
            if experiment.label == label:
                return experiment
        return None

    def results(self, key: str, *, control: str | None = None) -> ExperimentResults:
        """Per-variant figures from the traces and feedback, each variant compared with the control (the
        first variant by name unless ``control`` names another), and a recommendation."""
        from llmops.prompts.experiment_results import experiment_results

        return experiment_results(self._engine, self.get(key), control=control)

    def promote(self, key: str, variant: str, *, author: str | None = None) -> Experiment:
        """Move the experiment's label to the winner's version and end the experiment."""
        experiment = self.get(key)
        if variant not in {v.name for v in experiment.variants}:
            raise VariantNotFound(
                f"experiment {experiment.name!r} has no variant {variant!r} "
                f"(it has {', '.join(v.name for v in experiment.variants)})"
            )
        winner = _running(experiment).variant(variant)
        self._prompts.set_label(experiment.prompt, experiment.label, winner.version, author=author)
        return self._end(experiment, "promoted", winner.name)

    def stop(self, key: str) -> Experiment:
        return self._end(_running(self.get(key)), "stopped", None)

    def _end(self, experiment: Experiment, status: str, winner: str | None) -> Experiment:
        with self._engine.begin() as connection:
            connection.execute(
                update(experiments)
                .where(experiments.c.id == experiment.id)
                .values(status=status, winner=winner, ended_at=datetime.now(UTC))
            )
            self._repository.bump_revision(connection)
        return self.get(experiment.id)


def _running(experiment: Experiment) -> Experiment:
    if experiment.status != RUNNING:
        raise ExperimentConflict(f"experiment {experiment.name!r} is {experiment.status}, not running")
    return experiment


def _check_definition(
    name: str,
    label: str,
    sticky_by: str,
    variants: Sequence[tuple[str, int, float]],
    description: str | None,
    author: str | None,
) -> None:
    if not valid_name(name):
        raise InvalidPrompt(f"name: {name!r} is not a valid experiment name (letters, digits, '.', '_', '-')")
    if not valid_label(label):
        raise InvalidPrompt(f"label: {label!r} is not a label")
    if sticky_by not in STICKY_BY:
        raise InvalidPrompt(f"sticky_by: expected one of {', '.join(STICKY_BY)}, got {sticky_by!r}")
    if len(variants) < 2:
        raise InvalidPrompt("an experiment needs at least two variants")
    if len(variants) > MAX_VARIANTS:
        raise InvalidPrompt(f"an experiment has at most {MAX_VARIANTS} variants")
    names = [variant[0] for variant in variants]
    if len(set(names)) != len(names):
        raise InvalidPrompt("variant names must differ")
    for variant_name, version, weight in variants:
        if not valid_label(variant_name):
            raise InvalidPrompt(
                f"variant name {variant_name!r}: letters, digits, '.', '_' or '-', not only digits"
            )
        if not 1 <= version <= MAX_VERSION:
            raise InvalidPrompt(f"variant {variant_name!r}: version must be a positive number")
        if not (weight > 0 and math.isfinite(weight)) or weight > MAX_WEIGHT:
            raise InvalidPrompt(
                f"variant {variant_name!r}: weight must be greater than 0 and at most {MAX_WEIGHT:g}"
            )
    if description is not None and (len(description) > MAX_DESCRIPTION or "\x00" in description):
        raise InvalidPrompt(f"description: at most {MAX_DESCRIPTION} characters, no NUL")
    if author is not None and "\x00" in author:
        raise InvalidPrompt("author: no NUL characters")


def _experiment(row: dict[str, Any], variants: Sequence[Any]) -> Experiment:
    return Experiment(
        id=row["id"],
        name=row["name"],
        prompt=row["prompt"],
        label=row["label"],
        status=row["status"],
        sticky_by=row["sticky_by"],
        variants=tuple(Variant(v.name, int(v.version), float(v.weight)) for v in variants),
        description=row["description"],
        winner=row["winner"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        ended_at=row["ended_at"],
    )
