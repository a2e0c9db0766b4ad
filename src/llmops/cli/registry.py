"""`llmops registry`: registered models, their versions, aliases and lineage from the command line.

Each command calls one function of :class:`llmops.registry.RegistryService` (the same as the REST API
under /api/registry) and prints a Rich table, or JSON with `--json`. Errors are one line, `error: ...`,
and exit code 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from llmops.cli import registry_views as views
from llmops.cli._common import default_author, echo_json, fail, readable_errors, store_for

app = typer.Typer(
    help="The model registry: versions with their artefacts and lineage, aliases such as production.",
    no_args_is_help=True,
)

_REF = "NAME (its latest version), NAME@VERSION or NAME@ALIAS."
_AUTHOR = "Who does it (default: git config user.name, else $USER)."
_JSON = "Print JSON instead of a table."


@app.command("list")
def list_models(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False
) -> None:
    """List registered models with their latest version and aliases."""
    with readable_errors(), store_for(ctx) as store:
        found = store.registry.list_models()
    echo_json(found) if as_json else views.print_models(found)


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help=_REF)],
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Show one version: artefacts with checksums, serving config, base model, dataset, metrics."""
    with readable_errors(), store_for(ctx) as store:
        info = store.registry.resolve(ref)
    echo_json(info.to_dict()) if as_json else views.print_version(info)


@app.command("versions")
def versions(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """List a model's versions, oldest first."""
    with readable_errors(), store_for(ctx) as store:
        found = store.registry.versions(name)
    echo_json([info.to_dict() for info in found]) if as_json else views.print_versions(found)


@app.command("register")
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model (created if new).")],
    artefact: Annotated[
        list[str] | None,
        typer.Option(
            "--artefact",
            "-a",
            help="KIND=PATH, repeatable: gguf-q4_k_m=model.gguf, adapter=DIR, merged=DIR, report=FILE.",
        ),
    ] = None,
    serving_json: Annotated[
        str | None,
        typer.Option(
            "--serving-json",
            help='How to serve it, as a deployment of llmops.yaml: \'{"provider": "openai", '
            '"base_url": "http://host:8000/v1", "model": "m"}\'.',
        ),
    ] = None,
    base_model: Annotated[str | None, typer.Option(help="The model it was tuned from.")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="The dataset version it was trained on: NAME@VERSION.")
    ] = None,
    params_json: Annotated[
        str | None, typer.Option("--params-json", help="Hyper-parameters as a JSON object.")
    ] = None,
    metrics_json: Annotated[
        str | None, typer.Option("--metrics-json", help="Metrics as a JSON object.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What this version is.")] = None,
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Register a new version: copy its artefacts into the artefact store, or record how to serve it
    (an external GGUF, or an OpenAI-compatible endpoint with --serving-json)."""
    artefacts = dict(_artefact(item) for item in artefact or [])
    with readable_errors(), store_for(ctx) as store:
        info = store.registry.register(
            name,
            artefacts=artefacts,
            serving=_json_object(serving_json, "--serving-json"),
            base_model=base_model,
            dataset=dataset,
            params=_json_object(params_json, "--params-json"),
            metrics=_json_object(metrics_json, "--metrics-json"),
            description=description,
            author=default_author(author),
        )
    echo_json(info.to_dict()) if as_json else views.print_version(info)


def _artefact(text: str) -> tuple[str, Path]:
    kind, separator, path = text.partition("=")
    if not separator or not kind or not path:
        fail(f"--artefact: expected KIND=PATH, got {text!r}")
    return kind.strip(), Path(path)


def _json_object(text: str | None, option: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        fail(f"{option}: not JSON: {exc}")
    if not isinstance(value, dict):
        fail(f"{option}: expected a JSON object")
    return value


@app.command("alias")
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production, candidate.")],
    version: Annotated[int, typer.Argument(help="The version it points at from now on.", min=1)],
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Point an alias at a version (it moves if it pointed elsewhere; the move is recorded)."""
    with readable_errors(), store_for(ctx) as store:
        event = store.registry.set_alias(name, alias_name, version, author=default_author(author))
    echo_json(event) if as_json else views.print_alias_move(name, event)


@app.command("unalias")
def unalias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="The alias to remove.")],
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
) -> None:
    """Remove an alias (recorded in the history)."""
    with readable_errors(), store_for(ctx) as store:
        store.registry.remove_alias(name, alias_name, author=default_author(author))
    typer.echo(f"removed {name}@{alias_name}")


@app.command("history")
def history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    alias_name: Annotated[str | None, typer.Option("--alias", help="Only this alias's moves.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Show alias moves and version deletions, oldest first, with who and when."""
    with readable_errors(), store_for(ctx) as store:
        if alias_name is None:
            events = store.registry.history(name)
        else:
            events = store.registry.alias_history(name, alias_name)
    echo_json(events) if as_json else views.print_history(name, events)


@app.command("delete")
def delete(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(help="NAME@VERSION (one version) or NAME (the model and all its versions).")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Delete even when aliases point at it (they are removed).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete a whole model without asking.")] = False,
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
) -> None:
    """Delete a version, or a model, with its artefacts. Refused while a deployment uses it."""
    from llmops.registry.service import parse_ref

    with readable_errors():
        name, at = parse_ref(ref)
    if isinstance(at, str):
        fail(f"delete takes NAME@VERSION with a number, not an alias: {ref}")
    if at is None and not yes:
        typer.confirm(f"Delete model {name} with every version and artefact?", abort=True)
    with readable_errors(), store_for(ctx) as store:
        if at is None:
            store.registry.delete_model(name, author=default_author(author), force=force)
        else:
            store.registry.delete_version(name, at, author=default_author(author), force=force)
    typer.echo(f"deleted {ref}")


@app.command("lineage")
def lineage(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help=_REF)],
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Show where a version came from: job, fine-tuning run, dataset versions, down to the traces."""
    with readable_errors(), store_for(ctx) as store:
        nodes = store.registry.lineage(ref)
    echo_json(nodes) if as_json else views.print_lineage(nodes)
