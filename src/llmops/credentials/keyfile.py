"""Where the master key comes from: ``LLMOPS_MASTER_KEY`` (setting ``master_key``), else a key file.

The key file (setting ``master_key_file``, default ``<home>/master.key``) holds the key as base64
text, mode 0600. It is created on first need when neither exists, and a file that group or others
may read is refused. The file is read again at every need, so a key rotated by the CLI is picked up
by a server's next reload without a restart (a key from the environment needs a restart).
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from llmops.credentials.crypto import MasterKey
from llmops.credentials.errors import MasterKeyError

_MODE = 0o600


@dataclass(frozen=True)
class MasterKeySource:
    """The configured key (text, from the environment or llmops.yaml) or the key file's path."""

    key_text: str | None = field(repr=False)
    path: Path

    @property
    def from_environment(self) -> bool:
        return self.key_text is not None

    def load(self) -> MasterKey | None:
        """The master key, or None when none is configured and there is no key file yet."""
        if self.key_text is not None:
            return MasterKey.from_text(self.key_text, "LLMOPS_MASTER_KEY")
        try:
            return read_key_file(self.path)
        except FileNotFoundError:
            return None

    def load_or_create(self) -> MasterKey:
        """The master key; a new key file (mode 0600) when there is none."""
        key = self.load()
        if key is not None:
            return key
        key = MasterKey.generate()
        try:
            write_key_file(self.path, key)
        except FileExistsError:  # another process created it first: use theirs
            return read_key_file(self.path)
        return key

    def install(self, staged: Path) -> Path | None:
        """Make ``staged`` (a key file written aside) the key file; returns where the old one is kept."""
        backup = None
        if self.path.exists():
            backup = self.path.with_name(f"{self.path.name}.old-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
            os.replace(self.path, backup)
        os.replace(staged, self.path)
        return backup

    def staged_path(self) -> Path:
        return self.path.with_name(self.path.name + ".new")


def read_key_file(path: Path) -> MasterKey:
    """The key in ``path``; :class:`MasterKeyError` if group or others may read it or it is malformed."""
    with path.open("rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise MasterKeyError(
                f"master key file {path} is open to group or others (mode {stat.S_IMODE(mode):04o}): "
                f"run chmod 600 {path}"
            )
        text = handle.read().decode("ascii", "replace")
    return MasterKey.from_text(text, f"master key file {path}")


def write_key_file(path: Path, key: MasterKey) -> None:
    """Create ``path`` with mode 0600 holding ``key``; :class:`FileExistsError` if it exists.

    The key is written whole to a private temporary file first and then linked into place, so
    another process never reads a half-written key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _MODE)
    try:
        try:
            os.write(descriptor, (key.text() + "\n").encode("ascii"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
