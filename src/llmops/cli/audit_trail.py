"""The audit events of CLI commands that change something and do not record their own.

Keys, teams and credentials record detailed events from their services. Every other command that
changes stored state (prompts, datasets, evaluation runs, annotation, the registry, fine-tuning,
deployments, feedback) is recorded here, once, when it finishes without an error: the action is
the command (``registry_alias``), the target its first argument, ``after`` its options (redacted).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from llmops.services import Store

log = logging.getLogger("llmops.cli")

CHANGES = frozenset(
    {
        "traces feedback",
        *(f"prompts {name}" for name in ("push", "create", "label", "rollback", "unlabel")),
        *(f"experiments {name}" for name in ("create", "promote", "stop")),
        *(f"datasets {name}" for name in ("import", "from-traces", "clean")),
        *(f"evals {name}" for name in ("run", "resume", "label", "cancel")),
        *(f"annotate {name}" for name in ("create", "close", "submit", "skip", "accept")),
        *(f"registry {name}" for name in ("register", "alias", "unalias", "delete")),
        *(f"finetune {name}" for name in ("run", "resume", "cancel")),
        *(f"deploy {name}" for name in ("version", "promote", "rollback", "undeploy")),
    }
)
_RECORDED = "llmops.audit.recorded"


def record_cli_change(ctx: typer.Context, store: Store) -> None:
    """Record the command of ``ctx`` if it is a change (at most once per command run)."""
    command = _command_of(ctx)
    if command not in CHANGES or ctx.meta.get(_RECORDED):
        return
    ctx.meta[_RECORDED] = True
    from llmops.audit.actor import cli_actor

    group, _, name = command.partition(" ")
    params = {key: _plain(value) for key, value in ctx.params.items() if value not in (None, False, (), [])}
    target = next((str(value) for value in ctx.params.values() if isinstance(value, str | Path)), None)
    try:
        store.audit.record(
            cli_actor(), f"{group}_{name}".replace("-", "_"), group, target, after=params or None
        )
    except Exception:  # instrumentation boundary: the change is made; a lost event is logged, not fatal
        log.exception("could not write the audit event of `llmops %s`", command)


def _command_of(ctx: typer.Context) -> str:
    """``datasets import``: the names below the root (whose own name depends on how it was started)."""
    names: list[str] = []
    current: Any = ctx  # typer.Context, then click.Context parents
    while current is not None and current.parent is not None:
        names.append(current.info_name or "")
        current = current.parent
    return " ".join(reversed(names))


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value if isinstance(value, str | int | float | bool | dict) or value is None else str(value)
