"""`llmops pii`: find personal data in a file, and write a redacted copy.

The same :class:`~llmops.pii.PiiService` as the ``pii`` cleaning step and POST /api/pii/redact.
Errors are one line, `error: ...`, and exit code 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli._common import fail, readable_errors, settings_for

if TYPE_CHECKING:
    from llmops.pii import PiiService
    from llmops.pii.files import FileScan

app = typer.Typer(help="PII: find e-mails, phones, cards, IBANs, IPs, credentials and names; redact them.")

_STRATEGIES = "mask, mask_last4, tag, hash or drop"


def _names(text: str | None) -> list[str] | None:
    """``A,B`` (or ``A B``) as a list; None when the option was not given."""
    if text is None:
        return None
    names = [name for name in text.replace(",", " ").split() if name]
    if not names:
        fail("expected at least one name, e.g. EMAIL_ADDRESS,PERSON")
    return names


def _strategy_map(default: str, overrides: list[str]) -> str | dict[str, str]:
    if not overrides:
        return default
    mapping = {"default": default}
    for item in overrides:
        entity, sep, strategy = item.partition("=")
        if not sep or not entity.strip() or not strategy.strip():
            fail(f"--strategy-for: expected ENTITY=STRATEGY, e.g. PERSON=hash, got {item!r}")
        mapping[entity.strip()] = strategy.strip()
    return mapping


@app.command()
def scan(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="A text file (a text per line), .jsonl/.ndjson (an object per line) or .csv (header row).",
            show_default=False,
        ),
    ],
    entities: Annotated[
        str | None,
        typer.Option(help="Entities to look for, comma-separated, e.g. EMAIL_ADDRESS,PERSON (default: all)."),
    ] = None,
    fields: Annotated[
        str | None,
        typer.Option(
            help="JSONL/CSV: fields (dotted paths) or columns to scan, comma-separated (default: all text)."
        ),
    ] = None,
    redact: Annotated[bool, typer.Option("--redact", help="Write a redacted copy to --out.")] = False,
    strategy: Annotated[str, typer.Option(help=f"With --redact: {_STRATEGIES}.")] = "tag",
    strategy_for: Annotated[
        list[str] | None,
        typer.Option("--strategy-for", help="ENTITY=STRATEGY for one entity (repeatable), e.g. PERSON=hash."),
    ] = None,
    salt: Annotated[
        str | None,
        typer.Option(help="Salt of the hash strategy (default: setting pii_salt / LLMOPS_PII_SALT)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="With --redact: the file to write (same format).")] = None,
    nlp: Annotated[
        bool,
        typer.Option(help="Find PERSON, LOCATION, DATE_TIME with Presidio when the data extra is installed."),
    ] = True,
    examples: Annotated[int, typer.Option(min=0, max=20, help="Masked examples shown per entity.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Count the PII in FILE per entity, with a few masked examples; with --redact, write a redacted copy.

    Without --fields every string is scanned. Dropped rows (strategy drop) are left out of --out.
    """
    if redact and out is None:
        fail("--redact needs --out FILE")
    if out is not None and not redact:
        fail("--out goes with --redact")
    with readable_errors():
        from llmops.pii import PiiService

        service = PiiService(salt=salt or settings_for(ctx).pii_salt, use_nlp=None if nlp else False)
        result = _scan_with_progress(
            file,
            service,
            fields=_names(fields),
            entities=_names(entities),
            strategy=_strategy_map(strategy, strategy_for or []) if redact else None,
            out=out,
            examples=examples,
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print(result)


def _scan_with_progress(file: Path, service: PiiService, **options: Any) -> FileScan:
    """The scan, with a transient Rich progress bar (bytes read) on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from llmops.pii.files import scan_file

    columns = (TextColumn("scanning"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("scanning", total=None)

        def advance(stage: str, done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        return scan_file(file, service, progress=advance, **options)


def _print(result: FileScan) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table("entity", "count", "examples (masked)")
    for name, entry in sorted(result.entities.items()):
        table.add_row(name, str(entry.count), ", ".join(entry.examples))
    console.print(table)
    console.print(
        f"{result.records_with_pii} of {result.records} {'lines' if result.format == 'text' else 'records'}"
        f" ({result.format}) contain PII",
        markup=False,
    )
    if result.skipped_entities:
        console.print(
            f"not looked for: {', '.join(result.skipped_entities)}"
            " (they need the data extra: pip install 'llmops[data]')",
            markup=False,
        )
    if result.written is not None:
        dropped = f", {result.dropped} dropped" if result.dropped else ""
        console.print(f"wrote {result.written}{dropped}", markup=False)
