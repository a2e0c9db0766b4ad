"""The store: SQL tables, migrations and one repository per aggregate.

Errors: :class:`StoreError` (database unreachable, bad URL, migration failed).
"""

from llmops.store.db import StoreError, create_database_engine, migrate, open_database, ping
from llmops.store.keys import ApiKeyRow, KeyRepository
from llmops.store.traces import TraceFilter, TraceRepository

__all__ = [
    "ApiKeyRow",
    "KeyRepository",
    "StoreError",
    "TraceFilter",
    "TraceRepository",
    "create_database_engine",
    "migrate",
    "open_database",
    "ping",
]
