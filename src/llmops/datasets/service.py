"""Datasets as the CLI and the admin API use them: names and references, versions, imports.

A reference is ``NAME`` (the latest version) or ``NAME@N``. Every operation that changes a dataset
writes one new immutable version whose lineage says what it came from (``parents``), what was done
(``operation`` and ``params``), by whom and when. Writing rows equal to the latest version's creates
nothing: the latest version is returned and ``created`` is False.

Errors (all :class:`llmops.errors.UserError`): :class:`InvalidDataset` (400) for a bad name,
reference or parameter, :class:`BadRows` (400) for input rows that cannot be imported, with their
line numbers, and :class:`DatasetNotFound` (404).

A service made with :meth:`DatasetService.for_team` sees one team's datasets only (see
:mod:`llmops.store.scope`): another team's dataset is not found, the datasets it creates are the
team's, and its imports from traces take that team's traces only. The plain service (the CLI) sees all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from llmops.datasets.repository import (
    DatasetRepository,
    ForeignDataset,
    NewVersion,
    VersionInfo,
    WriteResult,
)
from llmops.datasets.rows import Row
from llmops.datasets.traces_source import TraceCounts, TraceSelection, select_trace_rows
from llmops.errors import NotFoundError, UserError
from llmops.progress import Progress, no_progress
from llmops.store.scope import ALL_TEAMS, TeamScope, sees

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
_NAME = re.compile(NAME_PATTERN)
_REF = re.compile(r"^(?P<name>[^@]+?)(?:@(?P<version>latest|[0-9]{1,9}))?$")
MAX_REPORTED_ERRORS = 100
OnError = Literal["fail", "skip"]


class InvalidDataset(UserError):
    """A bad dataset name, reference or parameter."""


class DatasetNotFound(NotFoundError):
    """No dataset, or no such version of it."""


class BadRows(UserError):
    """Input rows that cannot be imported; ``errors`` lists them (``FILE line N: reason``)."""

    def __init__(self, message: str, errors: Sequence[str]) -> None:
        super().__init__(message, param="rows")
        self.errors = list(errors)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidDataset(
            f"invalid dataset name {name!r}: use letters, digits, '.', '_' and '-' (at most 200)",
            param="name",
        )
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@N`` (or ``NAME@latest``) as (name, number or None for the latest)."""
    match = _REF.fullmatch(ref.strip())
    if match is None:
        raise InvalidDataset(f"invalid dataset reference {ref!r}: use NAME or NAME@VERSION", param="dataset")
    number = match["version"]
    if number is not None and number != "latest" and int(number) < 1:
        raise InvalidDataset(f"invalid dataset reference {ref!r}: versions start at 1", param="dataset")
    return check_name(match["name"]), None if number in (None, "latest") else int(number)


@dataclass
class ImportReport:
    """What an import read: rows taken, rows skipped and the first errors (``FILE line N: reason``)."""

    rows: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def add_error(self, message: str) -> None:
        self.skipped += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(message)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "skipped": self.skipped, "errors": self.errors}


@dataclass(frozen=True)
class ImportResult:
    result: WriteResult
    report: ImportReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.result.version.to_dict(),
            "created": self.result.created,
            **self.report.to_dict(),
        }


class DatasetService:
    def __init__(self, engine: Engine, *, team: TeamScope = ALL_TEAMS) -> None:
        self.engine = engine
        self.repository = DatasetRepository(engine)
        self.team = team

    def for_team(self, team: TeamScope) -> DatasetService:
        """The same datasets as a caller of ``team`` sees them (:data:`ALL_TEAMS`: all of them)."""
        return self if team == self.team else DatasetService(self.engine, team=team)

    # -- reading -------------------------------------------------------------------------------

    def list_datasets(self) -> list[dict[str, Any]]:
        return self.repository.list_datasets(self.team)

    def visible(self, name: str) -> bool:
        """Whether a dataset of this name exists and this service's team sees it."""
        found = self.repository.get_dataset(name)
        return found is not None and sees(self.team, found["team_id"])

    def check_writable(self, name: str) -> None:
        """:class:`DatasetNotFound` now when ``name`` is another team's dataset (a write would fail)."""
        found = self.repository.get_dataset(check_name(name))
        if found is not None and not sees(self.team, found["team_id"]):
            raise _taken(name)

    def _check_visible(self, name: str) -> None:
        if self.team != ALL_TEAMS and not self.visible(name):
            raise DatasetNotFound(f"no dataset named {name!r}", param="dataset")

    def resolve(self, ref: str) -> VersionInfo:
        """The version ``ref`` names; :class:`DatasetNotFound` when there is none."""
        name, number = parse_ref(ref)
        self._check_visible(name)
        found = self.repository.version(name, number)
        if found is None:
            if number is None or self.repository.version(name, None) is None:
                raise DatasetNotFound(f"no dataset named {name!r}", param="dataset")
            raise DatasetNotFound(f"dataset {name!r} has no version {number}", param="dataset")
        return found

    def versions(self, name: str) -> list[VersionInfo]:
        self._check_visible(check_name(name))
        found = self.repository.versions(name)
        if not found:
            raise DatasetNotFound(f"no dataset named {name!r}", param="dataset")
        return found

    def iter_rows(
        self, version: VersionInfo, *, offset: int = 0, limit: int | None = None
    ) -> Iterator[tuple[int, str, Row]]:
        """``(position, row_hash, row)`` of a version, in order (positions start at 0)."""
        return self.repository.iter_rows(version.id, offset=offset, limit=limit)

    def rows(self, version: VersionInfo) -> Iterator[Row]:
        return (row for _, _, row in self.iter_rows(version))

    # -- writing -------------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        rows: Iterable[Row],
        *,
        operation: str,
        params: dict[str, Any] | None = None,
        parents: Sequence[str] = (),
        report: list[Any] | None = None,
        message: str | None = None,
        author: str | None = None,
        total: int | None = None,
        progress: Progress = no_progress,
    ) -> WriteResult:
        """Write ``rows`` as the next version of ``name`` (the dataset is created if new)."""
        meta = NewVersion(
            operation=operation,
            params=params,
            parents=parents,
            report=report,
            message=message,
            author=author,
        )
        try:
            return self.repository.write_version(
                check_name(name), rows, meta, lambda done: progress(operation, done, total), self.team
            )
        except ForeignDataset:
            raise _taken(name) from None

    def import_files(
        self,
        name: str,
        paths: Sequence[Path],
        *,
        on_error: OnError = "fail",
        append: bool = False,
        file_format: str | None = None,
        message: str | None = None,
        author: str | None = None,
        progress: Progress = no_progress,
    ) -> ImportResult:
        """Rows of JSONL/CSV/Parquet files (or folders of them) as a new version of ``name``.

        ``on_error="fail"`` imports nothing when a row is bad and names its file and line;
        ``"skip"`` leaves bad rows out and reports them. ``append`` adds the rows after the latest
        version's (which becomes the parent) instead of replacing them.
        """
        from llmops.datasets.readers import read_rows

        check_name(name)
        if not paths:
            raise InvalidDataset("name at least one file or folder to import", param="files")
        report = ImportReport()
        parents: list[str] = []
        previous: Iterable[Row] = ()
        if append:
            latest = self.resolve(name)
            parents, previous = [latest.ref], self.rows(latest)

        def taken() -> Iterator[Row]:
            for item in read_rows(list(paths), format=file_format):
                if item.row is not None:
                    report.rows += 1
                    yield item.row
                    continue
                located = item.describe()  # "data.jsonl line 17: invalid JSON: ..." ("row 3" in Parquet)
                if on_error == "fail":
                    raise BadRows(f"nothing imported: {located}", [located])
                report.add_error(located)
                params["skipped"] = report.skipped

        params: dict[str, Any] = {
            "files": [str(path) for path in paths],
            "on_error": on_error,
            "append": append,
        }
        if file_format is not None:
            params["format"] = file_format
        result = self.create_version(
            name,
            _chain(previous, taken()),
            operation="import",
            params=params,
            parents=parents,
            message=message,
            author=author,
            progress=progress,
        )
        return ImportResult(result, report)

    def import_traces(
        self,
        name: str,
        selection: TraceSelection,
        *,
        message: str | None = None,
        author: str | None = None,
        progress: Progress = no_progress,
    ) -> tuple[WriteResult, TraceCounts]:
        """The traces ``selection`` matches as a new version of ``name`` (operation ``from_traces``)."""
        counts = TraceCounts()
        rows = (row for _, row in select_trace_rows(self.engine, selection, counts, team=self.team))
        result = self.create_version(
            check_name(name),
            rows,
            operation="from_traces",
            params=selection.to_params(),
            message=message,
            author=author,
            progress=progress,
        )
        return result, counts


def _taken(name: str) -> DatasetNotFound:
    """A write to a dataset the caller's team does not see: not found, and the name is not free either."""
    return DatasetNotFound(
        f"no dataset named {name!r} (the name is taken by a dataset this key cannot see)", param="name"
    )


def _chain(first: Iterable[Row], second: Iterable[Row]) -> Iterator[Row]:
    yield from first
    yield from second
