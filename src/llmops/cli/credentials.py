"""`llmops credentials`: provider API keys stored encrypted in the database.

A secret never goes on the command line (it would stay in the shell history and show in `ps`):
it is typed at a hidden prompt, piped on stdin (``--stdin``) or read from an environment variable
(``--from-env VAR``). Nothing prints a stored secret back.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from llmops.cli._common import echo_json, fail, readable_errors, store_for

app = typer.Typer(
    help="Store provider API keys encrypted (models name them in api_key_credential).",
    no_args_is_help=True,
)


def _read_secret(name: str, from_stdin: bool, from_env: str | None) -> str:
    if from_stdin and from_env:
        fail("give either --stdin or --from-env, not both")
    if from_env:
        value = os.environ.get(from_env)
        if not value:
            fail(f"--from-env: the environment variable {from_env} is not set or empty")
        return value
    if from_stdin:
        return sys.stdin.read().rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("no terminal to ask for the secret: pipe it with --stdin or name a variable with --from-env")
    return str(typer.prompt(f"secret for {name}", hide_input=True))


@app.command("set")
def set_credential(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The credential's name (what api_key_credential names).")],
    from_stdin: Annotated[bool, typer.Option("--stdin", help="Read the secret from standard input.")] = False,
    from_env: Annotated[
        str | None, typer.Option("--from-env", metavar="VAR", help="Read the secret from this variable.")
    ] = None,
) -> None:
    """Store (or replace) a credential: the secret comes from a hidden prompt, --stdin or --from-env."""
    from llmops.audit import cli_actor

    secret = _read_secret(name, from_stdin, from_env)
    with readable_errors(), store_for(ctx) as store:
        info = store.credentials.set(name, secret, cli_actor())
    typer.echo(f"stored credential {info.name} (master key {info.key_id})")


@app.command("list")
def list_credentials(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List stored credentials: names, master key fingerprint and dates (never the values)."""
    from rich.console import Console
    from rich.table import Table

    with readable_errors(), store_for(ctx) as store:
        found = store.credentials.list()
    if as_json:
        echo_json(
            [
                {"name": i.name, "key_id": i.key_id, "created_at": i.created_at, "updated_at": i.updated_at}
                for i in found
            ]
        )
        return
    table = Table("name", "master key", "created (UTC)", "updated (UTC)")
    for info in found:
        table.add_row(
            info.name,
            info.key_id,
            info.created_at.strftime("%Y-%m-%d %H:%M"),
            info.updated_at.strftime("%Y-%m-%d %H:%M"),
        )
    Console().print(table)


@app.command()
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The credential's name.")],
) -> None:
    """Delete a credential (refused while a configured model names it)."""
    from llmops.audit import cli_actor

    with readable_errors(), store_for(ctx) as store:
        info = store.credentials.delete(name, cli_actor())
    typer.echo(f"deleted credential {info.name}")


@app.command("rotate-key")
def rotate_key(ctx: typer.Context) -> None:
    """Generate a new master key and re-encrypt every credential with it, all or nothing.

    With a key file, the new key replaces it (mode 0600) and the old one is kept beside it as
    master.key.old-<time>. With LLMOPS_MASTER_KEY, the new key is printed: put it in the servers'
    environment and restart them. Running servers with the key file pick it up at their next reload.
    """
    from llmops.audit import cli_actor
    from llmops.credentials import rotate_master_key

    with readable_errors(), store_for(ctx) as store:
        done = rotate_master_key(store.credentials, cli_actor())
    was = f" (was {done.old_key_id})" if done.old_key_id else ""
    typer.echo(
        f"re-encrypted {done.count} credential{'s' if done.count != 1 else ''} "
        f"with master key {done.new_key.key_id}{was}",
        err=done.key_file is None,
    )
    if done.key_file is None:
        typer.echo(done.new_key.text())
        typer.echo(
            "set LLMOPS_MASTER_KEY to the key above wherever llmops runs, then restart: "
            "the previous key no longer opens the credentials",
            err=True,
        )
        return
    kept = f"; the previous key is kept in {done.backup}" if done.backup else ""
    typer.echo(f"new key file {done.key_file}{kept}")
