"""`llmops datasets`: versioned datasets from the command line.

Each command calls one function of :mod:`llmops.datasets.service` or :mod:`llmops.datasets.operations`
(the same as the REST API under /api/datasets) and prints a Rich table, or JSON with `--json`. Long
work shows a progress bar on stderr. Errors are one line, `error: ...`, and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmops.cli import dataset_views as views

if TYPE_CHECKING:
    from llmops.pii import PiiService
from llmops.cli._common import (
    default_author,
    echo_json,
    fail,
    progress_bar,
    readable_errors,
    settings_for,
    store_for,
)

app = typer.Typer(
    help="Versioned datasets: import files or traces, clean, diff, profile, export (fine-tuning JSONL too).",
    no_args_is_help=True,
)

_REF = "NAME (its latest version) or NAME@VERSION."
_AUTHOR = "Who does it (default: git config user.name, else $USER)."
_JSON = "Print JSON instead of a table."
_MESSAGE = "A note stored with the new version."


@app.command("list")
def list_datasets(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False
) -> None:
    """List datasets with their latest version and row count."""
    with readable_errors(), store_for(ctx) as store:
        found = store.datasets.list_datasets()
    echo_json(found) if as_json else views.print_datasets(found)


@app.command("import")
def import_files(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The dataset (created if new).")],
    files: Annotated[
        list[Path], typer.Argument(help="JSONL, CSV, TSV or Parquet files (.gz too), or folders.")
    ],
    on_error: Annotated[
        str,
        typer.Option(
            "--on-error", help="fail: import nothing and name the first bad line; skip: leave bad rows out."
        ),
    ] = "fail",
    append: Annotated[
        bool, typer.Option("--append", help="Add to the latest version's rows instead of replacing them.")
    ] = False,
    file_format: Annotated[
        str | None,
        typer.Option(
            "--format", help="jsonl, json, csv, tsv or parquet (default: from each file's extension)."
        ),
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help=_MESSAGE)] = None,
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Import rows from files as a new version (streamed: a million rows never sit in memory)."""
    if on_error not in ("fail", "skip"):
        fail(f"--on-error: expected fail or skip, got {on_error!r}")
    with readable_errors(), store_for(ctx) as store, progress_bar(not as_json) as progress:
        result = store.datasets.import_files(
            name,
            files,
            on_error="fail" if on_error == "fail" else "skip",
            append=append,
            file_format=file_format,
            message=message,
            author=default_author(author),
            progress=progress,
        )
    echo_json(result.to_dict()) if as_json else views.print_import(result)


@app.command("from-traces")
def from_traces(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The dataset (created if new).")],
    model: Annotated[str | None, typer.Option(help="Only traces of this model (as requested).")] = None,
    prompt: Annotated[
        str | None, typer.Option(help="Only traces of this prompt: NAME or NAME@VERSION.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="30m, 2h, 7d (ago) or an ISO date/time.")] = None,
    until: Annotated[
        str | None, typer.Option(help="Before this moment: 30m, 2h, 7d (ago) or an ISO date/time.")
    ] = None,
    status: Annotated[str, typer.Option(help="ok, error or any.")] = "ok",
    feedback: Annotated[
        str | None, typer.Option(help="Only traces with a thumb up or down: up | down.")
    ] = None,
    min_score: Annotated[
        float | None, typer.Option(help="Only traces with a feedback score at least this.")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Only traces with feedback carrying this label.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many rows (oldest first).")] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help=_MESSAGE)] = None,
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Turn production traces into a new version (messages or input, the answer as expected, origin)."""
    from llmops.datasets.traces_source import selection_from_options

    with readable_errors(), store_for(ctx) as store, progress_bar(not as_json) as progress:
        selection = selection_from_options(
            model=model,
            prompt=prompt,
            since=since,
            until=until,
            status=status,
            feedback=feedback,
            min_score=min_score,
            label=label,
            limit=limit,
        )
        result, counts = store.datasets.import_traces(
            name, selection, message=message, author=default_author(author), progress=progress
        )
    if as_json:
        echo_json({"version": result.version.to_dict(), "created": result.created, **vars(counts)})
    else:
        views.print_from_traces(result, counts)


@app.command("versions")
def versions(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The dataset.")],
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Every version of a dataset with its lineage: parents, operation, who and when."""
    with readable_errors(), store_for(ctx) as store:
        found = store.datasets.versions(name)
    echo_json([v.to_dict() for v in found]) if as_json else views.print_versions(name, found)


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help=_REF)],
    limit: Annotated[int, typer.Option(min=0, help="Rows to show.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Rows to skip first.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """A version's lineage, its cleaning report if any, and its first rows."""
    with readable_errors(), store_for(ctx) as store:
        version = store.datasets.resolve(ref)
        rows = list(store.datasets.iter_rows(version, offset=offset, limit=limit))
    if as_json:
        echo_json({**version.to_dict(), "items": [{"position": p, "hash": h, "row": r} for p, h, r in rows]})
    else:
        views.print_version(version, rows)


@app.command("diff")
def diff(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The dataset.")],
    base: Annotated[int, typer.Argument(min=1, help="The earlier version number.")],
    other: Annotated[int, typer.Argument(min=1, help="The later version number.")],
    key: Annotated[
        str | None,
        typer.Option(
            help="The field that identifies a row across versions (default: id, metadata.id, input...)."
        ),
    ] = None,
    examples: Annotated[int, typer.Option(min=0, help="Examples of each kind to show.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Rows added, removed, changed and unchanged between two versions."""
    from llmops.datasets.operations import diff as diff_versions

    with readable_errors(), store_for(ctx) as store:
        found = diff_versions(store.datasets, f"{name}@{base}", f"{name}@{other}", key=key, examples=examples)
    echo_json(found.to_dict()) if as_json else views.print_diff(found)


@app.command("export")
def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help=_REF)],
    file_format: Annotated[
        str, typer.Option("--format", help="jsonl, csv, parquet; or chat / completion for fine-tuning JSONL.")
    ] = "jsonl",
    out: Annotated[
        Path | None,
        typer.Option(
            help="The file (jsonl/csv/parquet; default: stdout for jsonl/csv); chat/completion: a folder."
        ),
    ] = None,
    split: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="chat/completion: the train share, e.g. 0.9 (the rest is validation)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="chat/completion: the split's random seed (same seed, same split).")
    ] = 0,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="chat/completion: refuse examples longer than this.")
    ] = None,
    on_invalid: Annotated[
        str, typer.Option(help="chat/completion: fail (write nothing) or skip invalid rows.")
    ] = "fail",
    system: Annotated[
        str | None, typer.Option(help="chat: a system message put first in every example.")
    ] = None,
) -> None:
    """Write a version as JSONL, CSV or Parquet, or as checked fine-tuning JSONL (train/validation)."""
    import sys

    from llmops.datasets import operations

    with readable_errors(), store_for(ctx) as store, progress_bar(out is not None) as progress:
        if file_format in operations.FINETUNE_FORMATS:
            if out is None:
                fail("--out: name the folder for train.jsonl and validation.jsonl")
            if on_invalid not in ("fail", "skip"):
                fail(f"--on-invalid: expected fail or skip, got {on_invalid!r}")
            result = operations.export_finetune(
                store.datasets,
                ref,
                file_format=file_format,
                out_dir=out,
                split=split,
                seed=seed,
                max_tokens=max_tokens,
                on_invalid=on_invalid,
                system=system,
                progress=progress,
            )
            views.print_finetune_export(result)
            return
        if out is None and file_format == "parquet":
            fail("--out: Parquet needs a file")
        count = operations.export_rows(
            store.datasets, ref, file_format, out if out is not None else sys.stdout.buffer, progress=progress
        )
    if out is not None:
        typer.echo(f"wrote {count} rows to {out}", err=True)


@app.command("clean")
def clean(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help=_REF)],
    recipe: Annotated[
        Path | None, typer.Option(help="A YAML recipe: `steps:` listing registered steps in order.")
    ] = None,
    step: Annotated[
        list[str] | None,
        typer.Option(
            "--step", help="A step instead of a recipe: NAME or NAME:key=value,key=a|b (repeatable)."
        ),
    ] = None,
    into: Annotated[
        str | None, typer.Option(help="Write the result as a version of this dataset instead.")
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help=_MESSAGE)] = None,
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Run cleaning steps; one new version, with each step's report (what it removed or changed, and why)."""
    from llmops.datasets.cleaning.recipe import Recipe
    from llmops.datasets.operations import clean as run_clean

    if (recipe is None) == (not step):
        fail("give either --recipe FILE or one or more --step")
    with readable_errors(), store_for(ctx) as store, progress_bar(not as_json) as progress:
        parsed = Recipe.from_file(recipe) if recipe is not None else Recipe.from_cli(step or [])
        result = run_clean(
            store.datasets,
            ref,
            parsed,
            into=into,
            message=message,
            author=default_author(author),
            pii=_pii_service(settings_for(ctx).pii_salt),
            progress=progress,
        )
    echo_json(result.to_dict()) if as_json else views.print_clean(result)


def _pii_service(salt: str | None) -> PiiService:
    """One PII service per run, shared by the `pii` step (the NLP model loads once) with the salt setting."""
    from llmops.pii import PiiService

    return PiiService(salt=salt)


@app.command("profile")
def profile(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help=_REF)],
    pii: Annotated[bool, typer.Option("--pii/--no-pii", help="Measure PII rates (pattern entities).")] = True,
    near_duplicates: Annotated[
        bool,
        typer.Option(
            "--near-duplicates/--no-near-duplicates", help="Measure the near-duplicate rate (MinHash)."
        ),
    ] = True,
    sample: Annotated[
        int, typer.Option(min=1, help="Rows sampled for the language, near-duplicate and PII estimates.")
    ] = 50_000,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Rows, field coverage, length distribution, language mix, duplicate and PII rates of a version."""
    from llmops.datasets.operations import profile as run_profile

    with readable_errors(), store_for(ctx) as store, progress_bar(not as_json) as progress:
        service = None
        if pii:
            from llmops.pii import PiiService

            service = PiiService(use_nlp=False)
        found = run_profile(
            store.datasets,
            ref,
            pii=service,
            near_duplicates=near_duplicates,
            sample=sample,
            progress=progress,
        )
    echo_json(found.to_dict()) if as_json else views.print_profile(found)
