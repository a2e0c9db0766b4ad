"""The audit log: who changed what, when, from where, with the target before and after.

Public API: :class:`AuditService` (record, list, get), :class:`Actor` and :func:`cli_actor` (who
acts), :func:`redact` (what every ``before``/``after`` goes through). Errors:
:class:`InvalidAuditQuery` (400), :class:`AuditEventNotFound` (404).
"""

from llmops.audit.actor import Actor, cli_actor
from llmops.audit.redaction import REDACTED, is_secret_field, redact
from llmops.audit.service import (
    ID_PATTERN,
    MAX_PAGE_SIZE,
    AuditEventNotFound,
    AuditPage,
    AuditService,
    InvalidAuditQuery,
)

__all__ = [
    "ID_PATTERN",
    "MAX_PAGE_SIZE",
    "REDACTED",
    "Actor",
    "AuditEventNotFound",
    "AuditPage",
    "AuditService",
    "InvalidAuditQuery",
    "cli_actor",
    "is_secret_field",
    "redact",
]
