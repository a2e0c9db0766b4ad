"""Provider credentials stored encrypted (AES-256-GCM) under a master key.

Public API: :class:`CredentialService` (set, delete, list, get, reveal, rotate),
:class:`CredentialInfo`, :class:`MasterKey`, :class:`MasterKeySource` and :func:`key_source`
(where the key comes from), :func:`rotate_master_key`. Errors: :mod:`llmops.credentials.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmops.credentials.crypto import MasterKey
from llmops.credentials.errors import (
    CredentialError,
    CredentialInUse,
    CredentialNotFound,
    CredentialUnreadable,
    InvalidCredential,
    MasterKeyError,
)
from llmops.credentials.keyfile import MasterKeySource
from llmops.credentials.rotation import Rotation, rotate_master_key
from llmops.credentials.service import NAME_PATTERN, CredentialInfo, CredentialService

if TYPE_CHECKING:
    from llmops.settings import Settings

__all__ = [
    "NAME_PATTERN",
    "CredentialError",
    "CredentialInUse",
    "CredentialInfo",
    "CredentialNotFound",
    "CredentialService",
    "CredentialUnreadable",
    "InvalidCredential",
    "MasterKey",
    "MasterKeyError",
    "MasterKeySource",
    "Rotation",
    "key_source",
    "rotate_master_key",
]


def key_source(settings: Settings) -> MasterKeySource:
    """The master key the settings configure: ``master_key`` if set, else the key file."""
    text = settings.master_key.get_secret_value() if settings.master_key is not None else None
    return MasterKeySource(text, settings.resolved_master_key_file)
