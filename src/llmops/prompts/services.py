"""The prompt registry's service functions, behind the CLI, the REST API and the gateway.

Errors: :class:`PromptNotFound` (no such prompt, version or label: 404), :class:`InvalidPrompt`
(bad content, template, variables, label or reference: 400; a :class:`RenderError` is one too), and
its subclass :class:`PromptConflict` (valid, but not with the prompt as it is: a version of another
kind, a rollback with nothing earlier to go back to: 409).

A service made with :meth:`PromptService.for_team` sees one team's prompts only (see
:mod:`llmops.store.scope`): another team's prompt is not found, and the prompts it creates are the
team's. The plain service (the CLI, the gateway) sees every prompt.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from llmops.prompts.repository import ForeignPrompt, PromptRepository
from llmops.prompts.spec import (
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_VERSION,
    PromptContent,
    PromptFile,
    file_data,
    valid_label,
    valid_name,
)
from llmops.prompts.templates import Rendered, RenderError, check_content, render
from llmops.store.scope import ALL_TEAMS, TeamScope, sees

DEFAULT_LABEL = "production"
_REFERENCE = re.compile(r"^(?P<name>[^@#]+)(?:@(?P<label>[^@#]+)|#(?P<version>\d+))?$")


class PromptNotFound(LookupError):
    pass


class InvalidPrompt(ValueError):
    """Bad input; ``param`` names the field at fault when there is one (``variables.question``)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class PromptConflict(InvalidPrompt):
    """Valid on its own, but not with the prompt's current state."""


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One version of a prompt, as the registry holds it."""

    name: str
    number: int
    content_hash: str
    content: PromptContent
    message: str | None
    author: str | None
    created_at: Any
    labels: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.number,
            "content_hash": self.content_hash,
            **self.content.canonical(),
            "message": self.message,
            "author": self.author,
            "created_at": self.created_at,
            "labels": list(self.labels),
        }


@dataclass(frozen=True, slots=True)
class PushResult:
    version: PromptVersion
    created: bool
    labels_moved: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reference:
    """``NAME``, ``NAME@LABEL`` or ``NAME#VERSION``."""

    name: str
    label: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}#{self.version}"
        return f"{self.name}@{self.label}" if self.label else self.name


def parse_reference(text: str) -> Reference:
    match = _REFERENCE.match(text.strip())
    if not match or not valid_name(match["name"]):
        raise InvalidPrompt(f"not a prompt reference: {text!r} (expected NAME, NAME@LABEL or NAME#VERSION)")
    label = match["label"]
    if label is not None and not valid_label(label):
        raise InvalidPrompt(f"not a label: {label!r}")
    return Reference(match["name"], label, int(match["version"]) if match["version"] else None)


@dataclass
class PromptDiff:
    name: str
    old: int
    new: int
    changes: list[str] = field(default_factory=list)  # one line per changed field (model, a parameter, ...)
    text: list[str] = field(default_factory=list)  # unified diff of the templates

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from": self.old,
            "to": self.new,
            "changes": self.changes,
            "diff": self.text,
        }


class PromptService:
    def __init__(self, repository: PromptRepository, *, team: TeamScope = ALL_TEAMS) -> None:
        self._prompts = repository
        self.team = team

    def for_team(self, team: TeamScope) -> PromptService:
        """The same registry as a caller of ``team`` sees it (:data:`ALL_TEAMS`: everything)."""
        return self if team == self.team else PromptService(self._prompts, team=team)

    # -- writing ---------------------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        content: PromptContent,
        *,
        message: str | None = None,
        author: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        labels: tuple[str, ...] | list[str] = (),
    ) -> PushResult:
        """Store ``content`` as the prompt's next version, unless a version with this content exists."""
        if not valid_name(name):
            raise InvalidPrompt(f"name: {name!r} is not a prompt name (letters, digits, '.', '_', '-')")
        _check_about(message=message, author=author, description=description, tags=tags)
        try:
            check_content(content)
        except RenderError as exc:
            raise InvalidPrompt(str(exc)) from None
        existing = self._prompts.get_prompt(name)
        if existing is not None and not sees(self.team, existing["team_id"]):
            raise _foreign(name)
        if existing is not None and existing["kind"] != content.kind:
            raise PromptConflict(
                f"prompt {name!r} is a {existing['kind']} prompt; a version cannot make it {content.kind}"
            )
        try:
            row, created = self._prompts.add_version(
                name,
                content.kind,
                content.content_hash(),
                content.canonical(),
                message=message,
                author=author,
                description=description,
                tags=tags,
                team=self.team,
            )
        except ForeignPrompt:  # another team created it a moment ago
            raise _foreign(name) from None
        moved = []
        for label in labels:
            current = self._prompts.label(name, label)
            if current is None or current["version"] != row["number"]:
                self.set_label(name, label, int(row["number"]), author=author)
                moved.append(label)
        return PushResult(self._version(row), created, tuple(moved))

    def push_file(self, spec: PromptFile, author: str | None = None) -> PushResult:
        try:
            content = spec.content()
            check_content(content)
        except RenderError as exc:
            raise InvalidPrompt(f"{spec.name}: {exc}") from None
        except ValidationError as exc:
            raise InvalidPrompt(_first_error(exc, spec.name)) from None
        return self.create_version(
            spec.name,
            content,
            message=spec.message,
            author=spec.author or author,
            description=spec.description,
            tags=spec.tags,
            labels=spec.labels,
        )

    def push_dir(self, folder: Path, author: str | None = None) -> list[PushResult]:
        """Every ``*.yaml``/``*.yml`` file of ``folder`` (recursively, hidden folders such as ``.github``
        left out), checked all first, then pushed."""
        specs = [read_prompt_file(path) for path in prompt_files(folder)]
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise InvalidPrompt(f"prompt {duplicates[0]!r} is defined by more than one file in {folder}")
        for spec in specs:  # every file valid before anything is stored
            try:
                check_content(spec.content())
            except RenderError as exc:
                raise InvalidPrompt(f"{spec.name}: {exc}") from None
            except ValidationError as exc:
                raise InvalidPrompt(_first_error(exc, spec.name)) from None
        return [self.push_file(spec, author) for spec in specs]

    def pull_dir(self, folder: Path) -> list[Path]:
        """Write each prompt's latest version (with its labels) as ``<folder>/<name>.yaml``."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for prompt in self._prompts.list_prompts():
            version = self.get(Reference(prompt["name"], version=int(prompt["latest_version"])))
            labels = sorted(label for label, number in prompt["labels"].items() if number == version.number)
            data = file_data(
                version.name,
                version.content,
                description=prompt["description"],
                tags=prompt["tags"] or [],
                labels=labels,
                message=version.message,
                author=version.author,
            )
            path = folder / f"{version.name}.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
            written.append(path)
        return written

    # -- labels ----------------------------------------------------------------------------------------

    def set_label(
        self, name: str, label: str, version: int, *, author: str | None = None
    ) -> dict[str, Any] | None:
        """Point a label at a version: a deploy. The event of the move (None when it points there already)."""
        if not valid_label(label):
            raise InvalidPrompt(f"label: {label!r} (letters, digits, '.', '_' or '-', not only digits)")
        _check_about(author=author)
        self._require_version(name, version)
        current = self._prompts.label(name, label)
        if current is not None and int(current["version"]) == version:
            return None
        return self._prompts.move_label(name, label, version, action="deploy", author=author)

    def rollback(self, name: str, label: str, *, author: str | None = None) -> dict[str, Any]:
        """Move a label back to where it pointed before its last deploy (repeatable, step by step)."""
        _check_about(author=author)
        self._require_prompt(name)
        stack: list[int] = []
        for event in self._prompts.label_history(name, label):
            if event["action"] == "rollback":
                if stack:
                    stack.pop()
            elif event["to_version"] is None:
                stack.clear()
            elif not stack or stack[-1] != int(event["to_version"]):  # a move to where it was is no step
                stack.append(int(event["to_version"]))
        if not stack:
            raise PromptNotFound(f"prompt {name!r} has no label {label!r}")
        if len(stack) < 2:
            raise PromptConflict(f"label {label!r} of {name!r} has no earlier version to roll back to")
        return self._prompts.move_label(name, label, stack[-2], action="rollback", author=author)

    def remove_label(self, name: str, label: str, *, author: str | None = None) -> dict[str, Any]:
        _check_about(author=author)
        self._require_prompt(name)
        if self._prompts.label(name, label) is None:
            raise PromptNotFound(f"prompt {name!r} has no label {label!r}")
        return self._prompts.move_label(name, label, None, action="remove", author=author)

    def label(self, name: str, label: str) -> dict[str, Any]:
        """Where one label points now (with who moved it last, and when)."""
        self._require_prompt(name)
        row = self._prompts.label(name, label)
        if row is None:
            raise PromptNotFound(f"prompt {name!r} has no label {label!r}")
        return row

    def labels(self, name: str) -> list[dict[str, Any]]:
        self._require_prompt(name)
        return self._prompts.labels(name)

    def history(self, name: str, label: str | None = None) -> list[dict[str, Any]]:
        self._require_prompt(name)
        return self._prompts.label_history(name, label)

    # -- reading ---------------------------------------------------------------------------------------

    def list_prompts(self, *, tag: str | None = None, search: str | None = None) -> list[dict[str, Any]]:
        """Every prompt (name, kind, description, tags, latest_version, labels {label: version}, times)."""
        return self._prompts.list_prompts(tag=tag, search=search, team=self.team)

    def owner(self, name: str) -> str | None:
        """The team a prompt belongs to (None: no team); :class:`PromptNotFound` when it is not seen."""
        team_id: str | None = self._require_prompt(name)["team_id"]
        return team_id

    def prompt(self, name: str) -> dict[str, Any]:
        """One prompt's row as :meth:`list_prompts` gives it."""
        prompt = self._require_prompt(name)
        prompt["labels"] = {row["label"]: int(row["version"]) for row in self._prompts.labels(name)}
        return prompt

    def get(self, reference: Reference | str) -> PromptVersion:
        """A version by number, by label, or (a bare name) the ``production`` label, else the latest."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        prompt = self._require_prompt(ref.name)
        number = ref.version
        if number is not None and not 1 <= number <= MAX_VERSION:
            raise PromptNotFound(f"prompt {ref.name!r} has no version {number}")
        if number is None:
            label = self._prompts.label(ref.name, ref.label or DEFAULT_LABEL)
            if label is not None:
                number = int(label["version"])
            elif ref.label is not None:
                raise PromptNotFound(f"prompt {ref.name!r} has no label {ref.label!r}")
            else:
                number = int(prompt["latest_version"])
        row = self._prompts.get_version(ref.name, number)
        if row is None:
            raise PromptNotFound(f"prompt {ref.name!r} has no version {number}")
        return self._version(row)

    def versions(self, name: str) -> list[PromptVersion]:
        self._require_prompt(name)
        labels = self._labels_by_version(name)
        return [
            self._version(row, labels.get(int(row["number"]), ())) for row in self._prompts.versions(name)
        ]

    def render(
        self, reference: Reference | str, variables: dict[str, Any] | None
    ) -> tuple[PromptVersion, Rendered]:
        version = self.get(reference)
        try:
            return version, render(version.content, variables)
        except RenderError as exc:
            param = f"variables.{exc.variable}" if exc.variable else None
            raise InvalidPrompt(str(exc), param=param) from None

    def diff(self, name: str, old: int, new: int) -> PromptDiff:
        before = self.get(Reference(name, version=old)).content
        after = self.get(Reference(name, version=new)).content
        result = PromptDiff(name, old, new)
        for key in ("kind", "model"):
            if getattr(before, key) != getattr(after, key):
                result.changes.append(f"{key}: {getattr(before, key)!r} -> {getattr(after, key)!r}")
        result.changes += _dict_changes("parameters", before.parameters, after.parameters)
        result.changes += _dict_changes(
            "variables",
            {k: v.model_dump(exclude_defaults=True) for k, v in before.variables.items()},
            {k: v.model_dump(exclude_defaults=True) for k, v in after.variables.items()},
        )
        result.text = list(
            difflib.unified_diff(
                _template_lines(before), _template_lines(after), f"{name}#{old}", f"{name}#{new}", lineterm=""
            )
        )
        return result

    def revision(self) -> int:
        return self._prompts.revision()

    # -- helpers -----------------------------------------------------------------------------------------

    def _require_prompt(self, name: str) -> dict[str, Any]:
        prompt = self._prompts.get_prompt(name) if valid_name(name) else None
        if prompt is None or not sees(self.team, prompt["team_id"]):
            raise PromptNotFound(f"prompt {name!r} not found")
        return prompt

    def _require_version(self, name: str, number: int) -> None:
        self._require_prompt(name)
        if not 1 <= number <= MAX_VERSION or self._prompts.get_version(name, number) is None:
            raise PromptNotFound(f"prompt {name!r} has no version {number}")

    def _labels_by_version(self, name: str) -> dict[int, tuple[str, ...]]:
        found: dict[int, list[str]] = {}
        for label in self._prompts.labels(name):
            found.setdefault(int(label["version"]), []).append(label["label"])
        return {number: tuple(sorted(labels)) for number, labels in found.items()}

    def _version(self, row: dict[str, Any], labels: tuple[str, ...] | None = None) -> PromptVersion:
        if labels is None:
            labels = self._labels_by_version(row["prompt"]).get(int(row["number"]), ())
        return PromptVersion(
            name=row["prompt"],
            number=int(row["number"]),
            content_hash=row["content_hash"],
            content=PromptContent.model_validate(row["content"]),
            message=row["message"],
            author=row["author"],
            created_at=row["created_at"],
            labels=labels,
        )


def _foreign(name: str) -> PromptNotFound:
    """A write to a prompt the caller's team does not see: not found, and the name is not free either."""
    return PromptNotFound(f"prompt {name!r} not found (the name is taken by a prompt this key cannot see)")


def _template_lines(content: PromptContent) -> list[str]:
    if content.template is not None:
        return content.template.splitlines()
    lines: list[str] = []
    for message in content.messages or ():
        lines.append(f"[{message.role}]")
        lines.extend(message.content.splitlines())
    return lines


def _dict_changes(what: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changes = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            changes.append(f"{what}.{key}: removed (was {before[key]!r})")
        elif key not in before:
            changes.append(f"{what}.{key}: added {after[key]!r}")
        elif before[key] != after[key]:
            changes.append(f"{what}.{key}: {before[key]!r} -> {after[key]!r}")
    return changes


def prompt_files(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        raise InvalidPrompt(f"not a folder: {folder}")
    yield from sorted(
        path
        for path in folder.rglob("*")
        if path.suffix in (".yaml", ".yml")
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def read_prompt_file(path: Path, *, name: str | None = None) -> PromptFile:
    """One prompt file; ``name`` replaces the file's own (which may then be left out)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidPrompt(f"{path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InvalidPrompt(f"{path}: expected a mapping with name, kind, messages or template, ...")
    if name is not None:
        data["name"] = name
    return parse_prompt_file(data, str(path))


def parse_prompt_file(data: dict[str, Any], where: str | None = None) -> PromptFile:
    """A prompt file's mapping, checked; an :class:`InvalidPrompt` of one line when it is not one."""
    try:
        return PromptFile.model_validate(data)
    except ValidationError as exc:
        message = _first_error(exc, None)
        raise InvalidPrompt(f"{where}: {message}" if where else message) from None


def _first_error(exc: ValidationError, name: str | None) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    prefix = f"{name}: " if name else ""
    return f"{prefix}{where}: {message}{more}" if where else f"{prefix}{message}{more}"


_ABOUT_LIMITS = {"message": 2000, "author": 200, "description": 2000}


def _check_about(
    *,
    message: str | None = None,
    author: str | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
) -> None:
    """What is said about a version or a move fits its column: lengths, and no NUL."""
    for field_name, value in (("message", message), ("author", author), ("description", description)):
        if value is None:
            continue
        if len(value) > _ABOUT_LIMITS[field_name]:
            raise InvalidPrompt(
                f"{field_name}: longer than {_ABOUT_LIMITS[field_name]} characters", param=field_name
            )
        if "\x00" in value:
            raise InvalidPrompt(f"{field_name}: contains a NUL character", param=field_name)
    if tags is not None:
        if len(tags) > MAX_TAGS:
            raise InvalidPrompt(f"tags: more than {MAX_TAGS}", param="tags")
        for tag in tags:
            if not 1 <= len(tag) <= MAX_TAG_LENGTH or "\x00" in tag:
                raise InvalidPrompt(
                    f"tags: {tag!r} is not a tag (1 to {MAX_TAG_LENGTH} characters, no NUL)", param="tags"
                )
