"""The model registry as the CLI, the admin API, fine-tuning and deployments use it.

A model has versions numbered 1, 2, 3; each keeps its artefacts (copied into the artefact store under
``<model>/<version>/<kind>/`` with their SHA-256), how to serve it, and where it came from (base model,
dataset version, hyper-parameters, metrics, job, fine-tuning run). A reference is ``NAME`` (the latest
version), ``NAME@3`` or ``NAME@ALIAS``. Aliases (``candidate``, ``production``) move like prompt labels,
and every move is recorded with who and when.

Errors (all :class:`llmops.errors.UserError`): :class:`InvalidModel` (400) for a bad name, reference,
alias, artefact or serving config; :class:`ModelNotFound` (404); :class:`ModelConflict` (409) for a
deletion an alias or a deployment forbids; and the artefact store's own (see :mod:`.artefacts`).
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from llmops.registry.artefacts import ArtefactStore, check_local, digest_path
from llmops.registry.errors import InvalidModel, ModelConflict, ModelNotFound, aliased
from llmops.registry.repository import Artefact, ModelVersionInfo, NewVersion, RegistryRepository

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
KIND_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)
_KIND = re.compile(KIND_PATTERN)
RESERVED_ALIAS = "latest"  # NAME@latest is the newest version
_REF = re.compile(r"^(?P<name>[^@]+)(?:@(?P<at>[^@]+))?$")
GGUF_PREFERENCE = ("gguf-q4_k_m", "gguf-q8_0", "gguf-f16")

log = logging.getLogger("llmops.registry")

InUse = Callable[[str], str | None]
"""Given a version's ref (``name@3``), why it may not be deleted (e.g. "deployed as support"), or None."""


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidModel(
            f"invalid model name {name!r}: letters, digits, '.', '_' and '-', starting with a letter "
            "or digit (at most 128)",
            param="name",
        )
    return name


def check_alias(alias: str, *, new: bool = False) -> str:
    """A well-formed alias; ``new``: one about to be set, which may not be the reserved ``latest``."""
    if not _ALIAS.fullmatch(alias) or (new and alias == RESERVED_ALIAS):
        raise InvalidModel(
            f"invalid alias {alias!r}: lower-case letters, digits, '_' and '-', starting with a letter "
            "(at most 64; 'latest' is reserved)",
            param="alias",
        )
    return alias


def parse_ref(ref: str) -> tuple[str, int | str | None]:
    """``NAME`` → (name, None); ``NAME@3`` → (name, 3); ``NAME@ALIAS`` → (name, alias)."""
    match = _REF.fullmatch(ref.strip())
    if match is None:
        raise InvalidModel(
            f"invalid model reference {ref!r}: use NAME, NAME@VERSION or NAME@ALIAS", param="ref"
        )
    name, at = check_name(match["name"]), match["at"]
    if at is None or at == "latest":
        return name, None
    if at.isdigit():
        if int(at) < 1 or len(at) > 9:
            raise InvalidModel(f"invalid model reference {ref!r}: versions start at 1", param="ref")
        return name, int(at)
    return name, check_alias(at)


class RegistryService:
    """Registered models, their versions and aliases; artefacts in an :class:`ArtefactStore`.

    ``in_use`` is the veto deployments supply: the composition root sets it once both services exist,
    and every deletion asks it (a call may pass its own instead).
    """

    def __init__(
        self, engine: Engine, store: ArtefactStore, cache_dir: Path, *, in_use: InUse | None = None
    ) -> None:
        from llmops.datasets.service import DatasetService

        self.engine = engine
        self.store = store
        self.cache_dir = cache_dir
        self.in_use = in_use
        self.repository = RegistryRepository(engine)
        self._checked: dict[tuple[str, str], tuple[int, int]] = {}  # (path, sha256) -> (size, mtime_ns)
        self._downloading = threading.Lock()
        self._datasets = DatasetService(engine)

    # -- reading ----------------------------------------------------------------------------------

    def resolve(self, ref: str) -> ModelVersionInfo:
        name, at = parse_ref(ref)
        number = self._alias_target(name, at) if isinstance(at, str) else at
        found = self.repository.version(name, number)
        if found is None:
            self._require_model(name)
            if number is None:
                raise ModelNotFound(f"model {name!r} has no versions", param="ref")
            raise ModelNotFound(f"model {name!r} has no version {number}", param="ref")
        return found

    def _alias_target(self, name: str, alias: str) -> int:
        number = self.repository.aliases(name).get(alias)
        if number is None:
            self._require_model(name)
            raise ModelNotFound(f"model {name!r} has no alias {alias!r}", param="ref")
        return number

    def _require_model(self, name: str) -> dict[str, Any]:
        model = self.repository.get_model(name)
        if model is None:
            raise ModelNotFound(f"no model named {name!r}", param="name")
        return model

    def list_models(self) -> list[dict[str, Any]]:
        """name, description, latest_version, versions, aliases, created_by, created_at, updated_at."""
        return self.repository.list_models()

    def versions(self, name: str) -> list[ModelVersionInfo]:
        check_name(name)
        found = self.repository.versions(name)
        if not found:
            self._require_model(name)
        return found

    def get_model(self, name: str) -> dict[str, Any]:
        """The model's row with its aliases ({alias: version}) and ready versions."""
        model = self._require_model(check_name(name))
        model.pop("last_number", None)
        versions = self.repository.versions(name)
        return {
            **model,
            "latest_version": versions[-1].version if versions else None,
            "aliases": self.repository.aliases(name),
            "versions": versions,
        }

    # -- registering --------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        *,
        artefacts: Mapping[str, Path] | None = None,
        serving: dict[str, Any] | None = None,
        base_model: str | None = None,
        dataset: str | None = None,
        dataset_version: int | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        job_id: str | None = None,
        source: dict[str, Any] | None = None,
        description: str | None = None,
        author: str | None = None,
    ) -> ModelVersionInfo:
        """Store the artefacts (files or directories) as the next version of ``name`` (created if new).

        The version's number is reserved first (a pending version, invisible to readers), its artefacts
        are copied under ``<name>/<number>/<kind>/``, and only then does it become visible; if anything
        fails on the way, the copied files and the pending version are removed.
        """
        check_name(name)
        local = _check_artefacts(artefacts or {}, self.store)
        if serving is not None:
            _check_serving(serving)
        if not local and serving is None:
            raise InvalidModel("a version needs at least one artefact or a serving config", param="artefacts")
        dataset, dataset_version = self._dataset_of(dataset, dataset_version)
        meta = NewVersion(
            description=description,
            base_model=base_model,
            dataset=dataset,
            dataset_version=dataset_version,
            params=dict(params or {}),
            metrics=dict(metrics or {}),
            job_id=job_id,
            source=dict(source or {}),
            serving=serving,
            author=author,
        )
        digests = {kind: self._digest(kind, path) for kind, path in local.items()}  # before a number is taken
        version_id, number = self.repository.reserve_version(name, meta)
        prefix = f"{name}/{number}"
        try:
            stored = [
                self._put(kind, path, digests[kind], f"{prefix}/{kind}") for kind, path in local.items()
            ]
            self.repository.finish_version(version_id, stored)
        except BaseException:
            self.repository.discard_version(name, version_id)
            self._remove_files(prefix)
            raise
        if description:
            self.repository.fill_description(name, description)
        found = self.repository.version(name, number)
        assert found is not None
        return found

    def _remove_files(self, prefix: str) -> None:
        """After a failure: what cannot be removed is logged (the failure is what the caller sees)."""
        try:
            self.store.remove(self.store.uri(prefix))
        except Exception as exc:  # boundary: the original error propagates; this one is only reported
            log.warning("could not remove %s from the artefact store: %s", prefix, exc)

    @staticmethod
    def _digest(kind: str, path: Path) -> tuple[str, int]:
        try:
            return digest_path(path)
        except OSError as exc:  # the caller's file, not the store: a mistake to report, not a crash
            raise InvalidModel(
                f"artefact {kind}: cannot read {path}: {exc.strerror or exc}", param="artefacts"
            ) from exc

    def _put(self, kind: str, path: Path, digest: tuple[str, int], key: str) -> Artefact:
        is_dir = path.is_dir()
        uri = self.store.put(path, key if is_dir else f"{key}/{path.name}")
        return Artefact(kind=kind, uri=uri, sha256=digest[0], bytes=digest[1], is_dir=is_dir)

    def _dataset_of(self, dataset: str | None, number: int | None) -> tuple[str | None, int | None]:
        """The dataset version recorded (``NAME@N`` accepted; its latest when no number): it must exist."""
        if dataset is None:
            if number is not None:
                raise InvalidModel("dataset_version given without a dataset", param="dataset")
            return None, None
        ref = dataset if number is None or "@" in dataset else f"{dataset}@{number}"
        found = self._datasets.resolve(ref)
        return found.dataset, found.number

    def set_metrics(self, ref: str, metrics: dict[str, Any]) -> ModelVersionInfo:
        """Merge ``metrics`` into a version's (results that arrive after registration)."""
        info = self.resolve(ref)
        self.repository.merge_metrics(info.model, info.version, dict(metrics))
        return self.resolve(info.ref)

    # -- aliases --------------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, *, author: str | None = None) -> dict[str, Any]:
        """Point ``alias`` at ``version``; returns the move (from_version, to_version, at, by, changed)."""
        check_alias(alias, new=True)
        self.resolve(f"{check_name(name)}@{version}")
        return self.repository.move_alias(name, alias, version, author=author)

    def remove_alias(self, name: str, alias: str, *, author: str | None = None) -> None:
        check_alias(alias)
        self._alias_target(check_name(name), alias)
        self.repository.move_alias(name, alias, None, author=author)

    def alias_history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Every alias move of a model (or of one alias), oldest first: alias, from/to_version, at, by."""
        self._require_model(check_name(name))
        if alias is not None:
            check_alias(alias)
        return self.repository.events(name, alias=alias, aliases_only=True)

    def history(self, name: str) -> list[dict[str, Any]]:
        """Alias moves and version deletions of a model, oldest first."""
        self._require_model(check_name(name))
        return self.repository.events(name)

    # -- deleting -------------------------------------------------------------------------------------

    def delete_version(
        self,
        name: str,
        version: int,
        *,
        author: str | None = None,
        in_use: InUse | None = None,
        force: bool = False,
    ) -> None:
        """Delete a version and its artefacts. Refused (409) while a deployment uses it, and while an
        alias points at it unless ``force`` (which removes those aliases, recorded)."""
        info = self.resolve(f"{check_name(name)}@{version}")
        self._check_unused(info, in_use or self.in_use, force)
        self.repository.delete_version(name, version, author=author, force=force)
        self.store.remove(self.store.uri(f"{name}/{version}"))
        shutil.rmtree(self.cache_dir / name / str(version), ignore_errors=True)

    def delete_model(
        self, name: str, *, author: str | None = None, in_use: InUse | None = None, force: bool = False
    ) -> None:
        """Delete a model with every version, alias, event and artefact (same rules as a version)."""
        self._require_model(check_name(name))
        check = in_use or self.in_use
        for info in self.repository.versions(name):
            self._check_unused(info, check, force)
        self.repository.delete_model(name)
        self.store.remove(self.store.uri(name))
        shutil.rmtree(self.cache_dir / name, ignore_errors=True)

    @staticmethod
    def _check_unused(info: ModelVersionInfo, in_use: InUse | None, force: bool) -> None:
        reason = in_use(info.ref) if in_use is not None else None
        if reason:
            raise ModelConflict(f"{info.ref} is in use ({reason}): undeploy it first", param="version")
        if info.aliases and not force:
            raise aliased(info.ref, info.aliases)

    # -- serving ----------------------------------------------------------------------------------------

    def local_path(self, info: ModelVersionInfo, kind: str) -> Path:
        """A local file or directory of the artefact ``kind``, checked against its SHA-256: in place
        when the store is on this machine, else downloaded once into the cache."""
        artefact = info.artefact(kind)
        if artefact is None:
            raise ModelNotFound(f"model {info.ref} has no {kind!r} artefact", param="kind")
        if self.store.is_local:
            path = self.store.local_path(artefact.uri)
            if not self._checked_before(path, artefact):
                check_local(path, artefact.sha256, artefact.uri)
                self._remember_checked(path, artefact)
            return path
        folder = self.cache_dir / info.model / str(info.version)
        target = (
            folder / kind if artefact.is_dir else folder / kind / artefact.uri.rstrip("/").rsplit("/", 1)[-1]
        )
        marker = folder / f"{kind}.sha256"
        with self._downloading:  # one download at a time: a second caller finds the first one's copy
            if target.exists() and marker.is_file() and marker.read_text().strip() == artefact.sha256:
                return target
            marker.unlink(missing_ok=True)
            self.store.get(artefact.uri, target, sha256=artefact.sha256)
            marker.write_text(artefact.sha256 + "\n")
        return target

    def _checked_before(self, path: Path, artefact: Artefact) -> bool:
        """Whether this file was checked already and has not changed since (size and modification time):
        a multi-gigabyte GGUF is hashed once per process, not at every catalog rebuild."""
        key = (str(path), artefact.sha256)
        try:
            state = path.stat()
        except OSError:
            return False
        return not artefact.is_dir and self._checked.get(key) == (state.st_size, state.st_mtime_ns)

    def _remember_checked(self, path: Path, artefact: Artefact) -> None:
        state = path.stat()
        self._checked[(str(path), artefact.sha256)] = (state.st_size, state.st_mtime_ns)

    def serving_config(self, info: ModelVersionInfo) -> dict[str, Any]:
        """What the gateway serves for this version: its serving config, else its best GGUF through the
        ``local`` provider (Q4_K_M, then Q8_0, then F16, then any other GGUF)."""
        if info.serving is not None:
            return dict(info.serving)
        kinds = [item.kind for item in info.artefacts]
        ranked = [kind for kind in GGUF_PREFERENCE if kind in kinds] + sorted(
            kind for kind in kinds if kind.startswith("gguf-") and kind not in GGUF_PREFERENCE
        )
        if not ranked:
            raise InvalidModel(f"model {info.ref} has no GGUF artefact or serving config", param="ref")
        return {"provider": "local", "params": {"model_path": str(self.local_path(info, ranked[0]))}}

    def lineage(self, ref: str) -> list[dict[str, Any]]:
        """The version, its job and origin, its dataset version and that version's ancestors (depth first)."""
        from llmops.registry.lineage import version_lineage

        return version_lineage(self.resolve(ref), self.engine, self._datasets)


def _check_artefacts(artefacts: Mapping[str, Path], store: ArtefactStore) -> dict[str, Path]:
    """Kinds well formed; each path a regular file or a folder (never a device, whose reading would not
    end, nor a folder holding the artefact store, whose copy would copy itself)."""
    checked: dict[str, Path] = {}
    store_root = None
    if artefacts:  # reach the store first: one that cannot be used fails before a number is taken
        root = store.root
        store_root = store.local_path(root).resolve() if store.is_local else None
    for kind, path in artefacts.items():
        if not _KIND.fullmatch(kind):
            raise InvalidModel(
                f"invalid artefact kind {kind!r}: lower-case letters, digits, '.', '_' and '-' "
                "(e.g. gguf-q4_k_m)",
                param="artefacts",
            )
        local = Path(path).expanduser()
        if not local.exists():
            raise InvalidModel(f"artefact {kind}: no such file or directory: {local}", param="artefacts")
        if not (local.is_file() or local.is_dir()):
            raise InvalidModel(f"artefact {kind}: not a regular file or folder: {local}", param="artefacts")
        if local.is_dir() and not any(path.is_file() for path in local.rglob("*")):
            raise InvalidModel(f"artefact {kind}: the folder {local} holds no file", param="artefacts")
        if store_root is not None and local.is_dir() and store_root.is_relative_to(local.resolve()):
            raise InvalidModel(
                f"artefact {kind}: the folder {local} holds the artefact store", param="artefacts"
            )
        checked[kind] = local
    return checked


def _check_serving(serving: dict[str, Any]) -> None:
    """A serving config is a deployment of ``models:`` in llmops.yaml: checked as the gateway checks one."""
    from pydantic import ValidationError

    from llmops.model_config import DeploymentConfig

    try:
        DeploymentConfig.model_validate(serving)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "serving"
        raise InvalidModel(f"invalid serving config: {where}: {first['msg']}", param="serving") from exc
