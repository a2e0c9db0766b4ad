"""Changing the master key: re-seal every credential, then make the new key the configured one.

With a key file, the new key is first written aside (``master.key.new``, mode 0600), then every
credential is re-sealed in one transaction, then the new file replaces the key file and the old one
is kept as ``master.key.old-<UTC time>``. A failure before the commit leaves the old key and the
rows as they were. With ``LLMOPS_MASTER_KEY``, the new key is returned for the caller to print:
the environment of the servers must be changed by hand (then restart them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmops.audit import Actor
from llmops.credentials.crypto import MasterKey
from llmops.credentials.errors import MasterKeyError
from llmops.credentials.keyfile import write_key_file
from llmops.credentials.service import CredentialService


@dataclass(frozen=True)
class Rotation:
    old_key_id: str | None
    new_key: MasterKey
    count: int  # credentials re-sealed
    key_file: Path | None  # where the new key now is; None when it must go in LLMOPS_MASTER_KEY
    backup: Path | None  # the previous key file, kept


def rotate_master_key(service: CredentialService, actor: Actor, new_key: MasterKey | None = None) -> Rotation:
    source = service.source
    new_key = new_key or MasterKey.generate()
    old = service.master_key()
    old_id = old.key_id if old else None
    if source.from_environment:
        return Rotation(old_id, new_key, service.rotate(new_key, actor), None, None)
    staged = source.staged_path()
    try:
        write_key_file(staged, new_key)
    except FileExistsError:
        raise MasterKeyError(
            f"{staged} exists: an earlier rotate-key stopped half-way; if `llmops credentials list` "
            f"shows that file's key, move it to {source.path}, else delete it, then try again"
        ) from None
    try:
        count = service.rotate(new_key, actor)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    backup = source.install(staged)
    return Rotation(old_id, new_key, count, source.path, backup)
