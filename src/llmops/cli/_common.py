"""What every CLI command shares: settings from the global options, and one-line errors."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from llmops.progress import Progress
    from llmops.services import Store
    from llmops.settings import Settings


@dataclass(frozen=True)
class GlobalOptions:
    config: Path | None = None
    database_url: str | None = None


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _readable_errors() -> tuple[type[Exception], ...]:
    from llmops.errors import UserError
    from llmops.gateway.keys import InvalidKeyRequest
    from llmops.prompts.services import InvalidPrompt, PromptNotFound
    from llmops.providers.registry import ProviderConfigError
    from llmops.server.run import ServeError
    from llmops.settings import SettingsError
    from llmops.store.db import StoreError
    from llmops.tracing.service import InvalidQuery, TraceNotFound

    return (
        UserError,
        SettingsError,
        StoreError,
        ServeError,
        ProviderConfigError,
        InvalidQuery,
        TraceNotFound,
        InvalidKeyRequest,
        InvalidPrompt,
        PromptNotFound,
    )


@contextmanager
def readable_errors(code: int = 1) -> Iterator[None]:
    """Turn the project's expected errors into one line on stderr and exit status ``code`` (1)."""
    try:
        yield
    except _readable_errors() as exc:
        message = exc.args[0] if isinstance(exc, LookupError) and exc.args else str(exc)
        fail(str(message), code)
    except OSError as exc:
        fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", code)


def settings_for(ctx: typer.Context, **overrides: Any) -> Settings:
    from llmops.settings import load_settings

    options: GlobalOptions = ctx.obj or GlobalOptions()
    config = overrides.pop("config", None) or options.config
    overrides.setdefault("database_url", options.database_url)
    return load_settings(config, **overrides)


@contextmanager
def store_for(ctx: typer.Context) -> Iterator[Store]:
    from llmops.cli.audit_trail import record_cli_change
    from llmops.services import open_store

    store = open_store(settings_for(ctx))
    try:
        yield store
        record_cli_change(ctx, store)
    finally:
        store.close()


def default_author(given: str | None = None) -> str | None:
    """``--author``, else ``git config user.name``, else ``$USER`` (None when none is known)."""
    if given:
        return given
    try:
        found = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    return found or os.environ.get("USER") or None


def admin_api_json(
    url: str, key: str | None, body: dict[str, Any] | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """GET (or POST ``body``) a JSON document of the admin API; any failure is one line and exit 1.

    ``key`` defaults to ``$LLMOPS_API_KEY``.
    """
    import json
    import urllib.error
    import urllib.request

    key = key or os.environ.get("LLMOPS_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers=headers, method="GET" if data is None else "POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            reason = exc.reason
        fail(f"{url} answered {exc.code}: {reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        fail(f"cannot reach the server at {url}: {getattr(exc, 'reason', exc)}")


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (datetimes as ISO text): what ``--json`` prints."""
    import json

    def default(value: Any) -> str:
        return value.isoformat() if hasattr(value, "isoformat") else str(value)

    typer.echo(json.dumps(data, default=default, indent=2, ensure_ascii=False))


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
    """A Rich progress bar on stderr, one line per stage, fed through the :class:`Progress` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with RichProgress(*columns, console=Console(stderr=True), disable=not enabled) as bar:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield report
