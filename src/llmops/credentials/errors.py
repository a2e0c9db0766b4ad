"""What can go wrong with stored credentials; each message is one readable line, never a secret.

- :class:`InvalidCredential` (400): a bad name or secret.
- :class:`CredentialNotFound` (404): no credential has this name.
- :class:`CredentialInUse` (409): a configured model uses the credential being deleted.
- :class:`MasterKeyError` (500): the master key is missing, malformed or its file is unsafe.
- :class:`CredentialUnreadable` (500): a row does not open with the master key.
"""

from __future__ import annotations

from llmops.errors import ConflictError, NotFoundError, UserError


class CredentialError(UserError):
    """Base of the credential errors."""


class InvalidCredential(CredentialError):
    pass


class CredentialNotFound(CredentialError, NotFoundError):
    code = "credential_not_found"


class CredentialInUse(CredentialError, ConflictError):
    pass


class MasterKeyError(CredentialError):
    """The server's configuration, not the request, is at fault: HTTP 500."""

    status = 500
    code = "master_key"


class CredentialUnreadable(MasterKeyError):
    code = "credential_unreadable"
