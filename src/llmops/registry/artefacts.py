"""Where registered versions keep their files: a folder, or any URI that fsspec reaches.

The root comes from the setting ``artefact_store``: a plain path or ``file://`` (the default is
``<home>/artefacts``), ``memory://`` (one process, for tests) or a remote store such as ``s3://bucket/prefix``
when its fsspec package (``s3fs``) is installed. An artefact is one file or one directory; its SHA-256 is
the file's, or, for a directory, the hash over its files' sorted relative paths and their own hashes, so
the same content has the same hash wherever it is stored. Downloads are checked against it.

Errors: :class:`ArtefactStoreError` (400: the store cannot be used, e.g. its package is missing) and
:class:`ChecksumMismatch` (409: stored bytes differ from what was registered).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from llmops.errors import ConflictError, UserError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem  # type: ignore[import-untyped]

    from llmops.settings import Settings

CHUNK_BYTES = 1 << 20


class ArtefactStoreError(UserError):
    """The artefact store cannot be used: an unknown protocol, a missing package, a missing artefact."""


class ChecksumMismatch(ConflictError):
    """An artefact's bytes do not match the SHA-256 recorded when it was registered."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(files: Iterable[tuple[str, str]]) -> str:
    """The hash of a directory from ``(relative posix path, file sha256)`` pairs, in any order."""
    digest = hashlib.sha256()
    for relative, file_hash in sorted(files):
        digest.update(relative.encode() + b"\0" + file_hash.encode("ascii") + b"\n")
    return digest.hexdigest()


def _files_under(folder: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path.relative_to(folder).as_posix(), path


def digest_path(path: Path) -> tuple[str, int]:
    """SHA-256 and size in bytes of a local file or directory (a directory's: all its files)."""
    if path.is_dir():
        hashes, size = [], 0
        for relative, file in _files_under(path):
            hashes.append((relative, file_sha256(file)))
            size += file.stat().st_size
        return tree_sha256(hashes), size
    return file_sha256(path), path.stat().st_size


def _filesystem(root: str) -> tuple[AbstractFileSystem, str]:
    from fsspec.core import url_to_fs  # type: ignore[import-untyped]
    from fsspec.registry import known_implementations  # type: ignore[import-untyped]

    protocol = root.split("://", 1)[0] if "://" in root else "file"
    try:
        fs, path = url_to_fs(root)
    except ImportError as exc:
        package = str(known_implementations.get(protocol, {}).get("class", protocol)).split(".")[0]
        raise ArtefactStoreError(
            f"the artefact store {root} needs the {package} package: pip install {package}",
            param="artefact_store",
        ) from exc
    except ValueError as exc:
        raise ArtefactStoreError(
            f"cannot use the artefact store {root!r}: {exc}", param="artefact_store"
        ) from exc
    return fs, str(path)


class ArtefactStore:
    """Files and directories under one root, addressed by keys (``model/3/adapter``) and URIs."""

    def __init__(self, root: str | Path) -> None:
        text = str(root)
        if "://" not in text:
            text = str(Path(text).expanduser().absolute())
        self._given = text
        self.is_local = text.split("://", 1)[0] in ("file", "local") if "://" in text else True

    @classmethod
    def for_settings(cls, settings: Settings) -> ArtefactStore:
        """The store the setting ``artefact_store`` names, else ``<home>/artefacts``."""
        return cls(settings.artefact_store or settings.home / "artefacts")

    @cached_property
    def _filesystem(self) -> tuple[AbstractFileSystem, str]:
        """Reached on first use, so a store that cannot be used fails the commands that use it only."""
        fs, root = _filesystem(self._given)
        if self.is_local:
            Path(root).mkdir(parents=True, exist_ok=True)
        return fs, root

    @property
    def fs(self) -> AbstractFileSystem:
        return self._filesystem[0]

    @property
    def _root(self) -> str:
        return self._filesystem[1]

    @property
    def root(self) -> str:
        return str(self.fs.unstrip_protocol(self._root))

    def uri(self, key: str) -> str:
        return str(self.fs.unstrip_protocol(self._path_of_key(key)))

    def _path_of_key(self, key: str) -> str:
        parts = [part for part in key.split("/") if part]
        if not parts or any(part in (".", "..") for part in parts):
            raise ArtefactStoreError(f"invalid artefact key {key!r}")
        return "/".join([self._root.rstrip("/"), *parts])

    def _path(self, uri: str) -> str:
        path = str(self.fs._strip_protocol(uri))
        if path != self._root and not path.startswith(self._root.rstrip("/") + "/"):
            raise ArtefactStoreError(f"{uri} is not in the artefact store {self.root}")
        return path

    # -- writing ----------------------------------------------------------------------------------

    def put(self, local: Path, key: str) -> str:
        """Copy a local file, or a directory with everything in it, to ``key``; returns its URI."""
        target = self._path_of_key(key)
        if local.is_dir():
            for relative, file in _files_under(local):
                self._put_file(file, f"{target}/{relative}")
        elif local.is_file():
            self._put_file(local, target)
        else:
            raise ArtefactStoreError(f"no such file or directory: {local}", param="artefacts")
        return self.uri(key)

    def _put_file(self, local: Path, target: str) -> None:
        self.fs.makedirs(self.fs._parent(target), exist_ok=True)
        self.fs.put_file(str(local), target)
        stored = int(self.fs.size(target))
        if stored != local.stat().st_size:
            raise ArtefactStoreError(
                f"copying {local} to {target}: {stored} bytes arrived, not {local.stat().st_size}"
            )

    def remove(self, uri: str) -> None:
        """Delete a file or a directory tree (nothing when it is already gone)."""
        path = self._path(uri)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    # -- reading ----------------------------------------------------------------------------------

    def exists(self, uri: str) -> bool:
        return bool(self.fs.exists(self._path(uri)))

    def local_path(self, uri: str) -> Path:
        """The path on this machine of an artefact of a local store."""
        if not self.is_local:
            raise ArtefactStoreError(f"the artefact store {self.root} is not on this machine")
        return Path(self._path(uri))

    def get(self, uri: str, local: Path, *, sha256: str | None = None) -> Path:
        """Download a file or directory to ``local`` (replaced if there), checked against ``sha256``.

        The bytes land in a temporary sibling first and are moved into place only once they match, so
        ``local`` never holds a partial or corrupt copy.
        """
        path = self._path(uri)
        if not self.fs.exists(path):
            raise ArtefactStoreError(f"artefact missing from the store: {uri}")
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.parent / f".{local.name}.partial-{uuid.uuid4().hex[:8]}"
        try:
            if self.fs.isdir(path):
                for remote in self.fs.find(path):
                    relative = str(remote)[len(path.rstrip("/")) + 1 :]
                    (partial / relative).parent.mkdir(parents=True, exist_ok=True)
                    self.fs.get_file(remote, str(partial / relative))
            else:
                self.fs.get_file(path, str(partial))
            if sha256 is not None:
                found, _ = digest_path(partial)
                if found != sha256:
                    raise ChecksumMismatch(f"artefact {uri} is corrupt: its SHA-256 is {found}, not {sha256}")
            _replace(partial, local)
        finally:
            _remove_local(partial)
        return local


def check_local(path: Path, sha256: str, uri: str) -> None:
    """Raise :class:`ChecksumMismatch` when the file or directory at ``path`` is not what was registered."""
    if not path.exists():
        raise ArtefactStoreError(f"artefact missing from the store: {uri}")
    found, _ = digest_path(path)
    if found != sha256:
        raise ChecksumMismatch(f"artefact {uri} is corrupt: its SHA-256 is {found}, not {sha256}")


def _replace(source: Path, target: Path) -> None:
    _remove_local(target)
    os.replace(source, target)


def _remove_local(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)
