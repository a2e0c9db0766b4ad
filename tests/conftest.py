"""Shared fixtures: a migrated database on SQLite and on Postgres, for every store test.

Postgres comes from LLMOPS_TEST_POSTGRES_URL (set by `make test` and .ci/run); each test gets a
database of its own, dropped afterwards. If the variable is unset the Postgres cases are
skipped with a reason; if it is set and the server cannot be reached, they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from llmops.store import open_database

POSTGRES_URL_ENV = "LLMOPS_TEST_POSTGRES_URL"
# The longest modules, run first: with two workers (`make test`: pytest -n 2 --dist loadscope) a long
# module taken up last would leave one worker finishing it alone.
LONGEST_MODULES = (
    "test_schemathesis.py",
    "test_finetune_runs.py",
    "test_closed_loop.py",
    "test_finetune_api.py",
    "test_gguf_export.py",
    "test_trainer.py",
    "test_cli_prompts.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_MODULES.index(name) if name in LONGEST_MODULES else len(LONGEST_MODULES)

    items.sort(key=rank)  # stable: the order within each module stays as written


def _postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_URL_ENV) or None


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    """A fresh, empty Postgres database for one test."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set (make test sets it)")
    name = f"llmops_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of an empty database, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'llmops.db'}"
    return str(request.getfixturevalue("postgres_database_url"))


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    """A migrated database engine on each backend."""
    engine = open_database(database_url)
    try:
        yield engine
    finally:
        engine.dispose()
