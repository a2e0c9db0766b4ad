"""`llmops annotate`: human annotation queues from the command line.

Commands work on the database directly (like `llmops prompts`), acting as `--annotator` (default: git's
user.name, else $USER). With `--url` (and `--key`, default $LLMOPS_API_KEY) `next`, `submit`, `skip`
and `status` go through a running server's REST API instead, as the key: that is how an annotator with
a key of their own works. Errors are one line, `error: ...`, and exit code 1.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from llmops.cli._common import admin_api_json, default_author, echo_json, fail, readable_errors, store_for

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    help="Human annotation: queues over a dataset version or traces, next item, answers, agreement, accept.",
    no_args_is_help=True,
)

_JSON = "Print JSON instead of text."
_ANNOTATOR = "Who answers (default: git config user.name, else $USER). Ignored with --url: the key's name."
_URL = "A running server (http://127.0.0.1:4000): go through its REST API as --key."
_KEY = "The API key for --url (default: $LLMOPS_API_KEY); its name is the annotator."

Url = Annotated[str | None, typer.Option("--url", help=_URL, show_default=False)]
Key = Annotated[str | None, typer.Option("--key", help=_KEY, show_default=False)]
Annotator = Annotated[str | None, typer.Option("--annotator", help=_ANNOTATOR, show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help=_JSON)]


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _annotator(given: str | None) -> str:
    name = default_author(given)
    if not name:
        fail("name the annotator with --annotator (no git user.name or $USER to default to)")
    return name


def _api(url: str, path: str, key: str | None, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return admin_api_json(f"{url.rstrip('/')}/api/annotation-queues/{path}", key, body)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# -- queues -------------------------------------------------------------------------------------------


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The queue's name.")],
    dataset: Annotated[
        str | None, typer.Option(help="Items from this dataset version: NAME (latest) or NAME@VERSION.")
    ] = None,
    traces: Annotated[bool, typer.Option("--traces", help="Items from traces (filters below).")] = False,
    model: Annotated[str | None, typer.Option(help="--traces: only this model (as requested).")] = None,
    prompt: Annotated[
        str | None, typer.Option(help="--traces: only this prompt, NAME or NAME@VERSION.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="--traces: 30m, 2h, 7d (ago) or an ISO date/time.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="--traces: before this moment (same forms).")] = None,
    status: Annotated[str, typer.Option(help="--traces: ok, error or any.")] = "ok",
    feedback: Annotated[str | None, typer.Option(help="--traces: with a thumb up or down.")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="--traces: at most this many (oldest first).")
    ] = None,
    categories: Annotated[
        str | None, typer.Option(help="Labels to choose from, comma-separated: good,bad.")
    ] = None,
    score: Annotated[str | None, typer.Option(help="A score range: 1-5 or 0..1.")] = None,
    correction: Annotated[bool, typer.Option("--correction", help="Ask for a corrected output.")] = False,
    instructions: Annotated[str | None, typer.Option(help="How annotators should judge.")] = None,
    annotators: Annotated[int, typer.Option(min=1, help="Answers wanted per item.")] = 1,
    author: Annotated[
        str | None, typer.Option(help="Who creates it (default: git user.name, $USER).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Create a queue over a dataset version (--dataset) or over traces (--traces and filters)."""
    from llmops.annotation.schema import LabelSchema, parse_score_range
    from llmops.datasets.traces_source import selection_from_options

    with readable_errors(), store_for(ctx) as store:
        score_min, score_max = parse_score_range(score) if score else (None, None)
        schema = LabelSchema(
            categories=tuple(part.strip() for part in (categories or "").split(",") if part.strip()),
            score_min=score_min,
            score_max=score_max,
            correction=correction,
            instructions=instructions,
        )
        selection = None
        if traces:
            selection = selection_from_options(
                model=model,
                prompt=prompt,
                since=since,
                until=until,
                status=status,
                feedback=feedback,
                limit=limit,
            )
        queue = store.annotation.create_queue(
            name,
            schema,
            dataset=dataset,
            traces=selection,
            annotators_per_item=annotators,
            author=default_author(author),
        )
    if as_json:
        echo_json(queue.as_dict())
        return
    source = queue.source_ref or "traces"
    typer.echo(f"{queue.name}: {queue.items} items from {source}, {queue.annotators_per_item} answer(s) each")


@app.command("list")
def list_queues(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every queue with its source, items, answers wanted and status."""
    from rich.table import Table

    with readable_errors(), store_for(ctx) as store:
        queues = store.annotation.list_queues()
    if as_json:
        echo_json([queue.as_dict() for queue in queues])
        return
    table = Table("name", "source", "items", "per item", "status", "accepted as")
    for queue in queues:
        result = f"{queue.result_dataset}@{queue.result_version}" if queue.result_dataset else ""
        table.add_row(
            queue.name,
            queue.source_ref or "traces",
            str(queue.items),
            str(queue.annotators_per_item),
            queue.status,
            result,
        )
    _console().print(table)


@app.command()
def close(ctx: typer.Context, queue: Annotated[str, typer.Argument(help="The queue.")]) -> None:
    """Stop handing out items and taking answers (accepting still works)."""
    with readable_errors(), store_for(ctx) as store:
        store.annotation.close(queue)
    typer.echo(f"{queue}: closed")


# -- annotating ---------------------------------------------------------------------------------------


@app.command("next")
def next_item(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    annotator: Annotator = None,
    lease_minutes: Annotated[float, typer.Option(min=0.1, help="How long the item stays yours.")] = 30.0,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Take the next item to annotate (the same one again until you answer or skip it)."""
    if url:
        answer = _api(url, f"{quote(queue)}/next", key, {"lease_seconds": round(lease_minutes * 60)})
        item, schema, who = answer["item"], answer["schema"], answer["annotator"]
    else:
        who = _annotator(annotator)
        with readable_errors(), store_for(ctx) as store:
            found = store.annotation.next_item(queue, who, lease=timedelta(minutes=lease_minutes))
            schema = store.annotation.get_queue(queue).schema.as_dict()
        item = found.as_dict() if found else None
    if as_json:
        echo_json({"item": item, "annotator": who, "schema": schema})
        return
    if item is None:
        typer.echo(f"{queue}: nothing left for {who} now")
        return
    _show_item(queue, item, schema, who)


def _show_item(queue: str, item: dict[str, Any], schema: dict[str, Any], annotator: str) -> None:
    import json

    from rich.panel import Panel
    from rich.syntax import Syntax

    console = _console()
    data = item["data"]
    console.print(
        Panel(
            Syntax(json.dumps(data, indent=2, ensure_ascii=False), "json", word_wrap=True),
            title=f"{queue} · item {item['position'] + 1} · {item['id']}",
        )
    )
    asked = []
    if schema.get("categories"):
        asked.append(f"--label {'|'.join(schema['categories'])}")
    if schema.get("score"):
        asked.append(f"--score {schema['score']['min']:g}..{schema['score']['max']:g}")
    if schema.get("correction"):
        asked.append("--correction TEXT")
    if schema.get("instructions"):
        console.print(f"[bold]Instructions:[/bold] {schema['instructions']}")
    console.print(f"Answer as {annotator}:")
    console.print(f"  llmops annotate submit {queue} {item['id']} {' '.join(asked)}", soft_wrap=True)


@app.command()
def submit(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    item: Annotated[str, typer.Argument(help="The item id `next` showed.")],
    label: Annotated[str | None, typer.Option(help="One of the queue's categories.")] = None,
    score: Annotated[float | None, typer.Option(help="Within the queue's score range.")] = None,
    correction: Annotated[str | None, typer.Option(help="The output as it should have been.")] = None,
    comment: Annotated[str | None, typer.Option(help="A note for whoever reads the answers.")] = None,
    annotator: Annotator = None,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Answer an item; answering again replaces your earlier answer."""
    values = {"label": label, "score": score, "correction": correction, "comment": comment}
    if url:
        body = {name: value for name, value in values.items() if value is not None}
        answer = _api(url, f"{quote(queue)}/items/{quote(item)}/annotations", key, body)
    else:
        who = _annotator(annotator)
        with readable_errors(), store_for(ctx) as store:
            submitted = store.annotation.submit(
                queue, item, who, label=label, score=score, correction=correction, comment=comment
            )
        answer = {**submitted.answer.as_dict(), "replaced": submitted.replaced}
    if as_json:
        echo_json(answer)
        return
    typer.echo(
        f"{queue}: {'replaced' if answer['replaced'] else 'stored'} {answer['annotator']}'s answer on {item}"
    )


@app.command()
def skip(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    item: Annotated[str, typer.Argument(help="The item id `next` showed.")],
    annotator: Annotator = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Pass on an item: someone else gets it, and it is not handed to you again."""
    if url:
        who = _api(url, f"{quote(queue)}/items/{quote(item)}/skip", key, {})["annotator"]
    else:
        who = _annotator(annotator)
        with readable_errors(), store_for(ctx) as store:
            store.annotation.skip(queue, item, who)
    typer.echo(f"{queue}: {who} skipped {item}")


# -- results ------------------------------------------------------------------------------------------


@app.command()
def status(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """Items answered fully, partly or not at all, answers per annotator, and agreement."""
    if url:
        found = _api(url, f"{quote(queue)}/status", key)
    else:
        with readable_errors(), store_for(ctx) as store:
            found = store.annotation.status(queue).as_dict()
    if as_json:
        echo_json(found)
        return
    _show_status(found)


def _show_status(found: dict[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    queue = found["queue"]
    console.print(
        f"[bold]{queue['name']}[/bold] ({queue['status']}): {found['items']} items, "
        f"{queue['annotators_per_item']} answer(s) each · complete {found['complete']} · partly "
        f"{found['partial']} · untouched {found['untouched']} · handed out now {found['leased']}"
    )
    people = Table("annotator", "answered", "skipped")
    for row in found["annotators"]:
        people.add_row(row["annotator"], str(row["answered"]), str(row["skipped"]))
    console.print(people)
    labels, scores = found["agreement"]["labels"], found["agreement"]["scores"]
    agreement = Table("measure", "value", "over")
    agreement.add_row(
        "Cohen's kappa (labels, 2 annotators)", _figure(labels["cohen_kappa"]), f"{labels['items']} items"
    )
    agreement.add_row(
        "Fleiss' kappa (labels)", _figure(labels["fleiss_kappa"]), f"{labels['fleiss_items']} items"
    )
    agreement.add_row(
        "Krippendorff's alpha (labels, nominal)",
        _figure(labels["krippendorff_alpha"]),
        f"{labels['items']} items",
    )
    agreement.add_row(
        "Krippendorff's alpha (scores, interval)",
        _figure(scores["krippendorff_alpha"]),
        f"{scores['items']} items",
    )
    console.print(agreement)


@app.command()
def accept(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    into: Annotated[
        str | None,
        typer.Option(help="The dataset to write (default: the source dataset, or the queue's name)."),
    ] = None,
    include_partial: Annotated[
        bool, typer.Option("--include-partial", help="Also take items with fewer answers than asked.")
    ] = False,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="A note stored with the version.")
    ] = None,
    author: Annotated[str | None, typer.Option(help="Who accepts (default: git user.name, $USER).")] = None,
    as_json: AsJson = False,
) -> None:
    """Write the answered items as a new dataset version (majority label, mean score, correction)."""
    with readable_errors(), store_for(ctx) as store:
        accepted = store.annotation.accept(
            queue, into=into, include_partial=include_partial, author=default_author(author), message=message
        )
    if as_json:
        echo_json(accepted.as_dict())
        return
    state = "created" if accepted.created else "unchanged (equal to the latest)"
    typer.echo(
        f"{accepted.version.ref}: {state}; {accepted.accepted} items accepted "
        f"({accepted.partial} partly answered), {accepted.left_out} left out"
    )
