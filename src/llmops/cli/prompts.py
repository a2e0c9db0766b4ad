"""`llmops prompts`: the prompt registry from the command line.

Each command calls one :class:`~llmops.prompts.services.PromptService` function (the same as the REST
API under /api/prompts) and prints a Rich table or text; `--json` prints JSON for scripts wherever a
command lists or shows something. Errors are one line, `error: ...`, and exit code 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops.cli import prompt_tools
from llmops.cli._common import default_author, echo_json, fail, readable_errors, store_for

if TYPE_CHECKING:
    from rich.console import Console

    from llmops.prompts.services import PromptVersion, PushResult
    from llmops.prompts.spec import PromptFile

app = typer.Typer(
    help="Versioned prompts: push and pull files, labels, rollback, diff, render.", no_args_is_help=True
)

_REFERENCE = "NAME, NAME@LABEL or NAME#VERSION (a bare NAME: its production label, else its latest version)."
_AUTHOR = "Who does it (default: git config user.name, else $USER)."
_JSON = "Print JSON instead of a table."


# -- helpers -----------------------------------------------------------------------------------------


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else str(value or "")


def _version_number(text: str, what: str = "VERSION") -> int:
    """``4``, ``v4`` or ``#4``; anything else is a one-line error."""
    digits = text.strip().removeprefix("#").removeprefix("v")
    if not digits.isdigit() or int(digits) < 1:
        fail(f"{what}: expected a version number such as 3 (or v3), got {text!r}")
    return int(digits)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _labels_text(labels: dict[str, int]) -> str:
    return ", ".join(f"{label}→v{version}" for label, version in sorted(labels.items()))


def _parse_value(text: str) -> Any:
    """JSON when it parses (numbers, true, lists, objects, quoted strings), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _variables(pairs: list[str], vars_file: Path | None, option: str = "--var") -> dict[str, Any]:
    import yaml

    values: dict[str, Any] = {}
    if vars_file is not None:
        try:
            loaded = yaml.safe_load(vars_file.read_text(encoding="utf-8"))
        except OSError as exc:
            fail(f"--vars-file: {exc.strerror or exc}: {vars_file}")
        except yaml.YAMLError as exc:
            fail(f"--vars-file: {vars_file}: {str(exc).splitlines()[0]}")
        if not isinstance(loaded, dict):
            fail(f"--vars-file: {vars_file}: expected a mapping of variable names to values")
        values.update(loaded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"{option}: expected NAME=VALUE, got {pair!r}")
        values[name.strip()] = _parse_value(value)
    return values


def _push_line(result: PushResult) -> str:
    version = result.version
    line = f"{version.name}: {'created' if result.created else 'unchanged'} v{version.number}"
    if result.labels_moved:
        line += f"; labels moved: {', '.join(result.labels_moved)}"
    return line


def _push_json(result: PushResult) -> dict[str, Any]:
    return {
        "name": result.version.name,
        "version": result.version.number,
        "content_hash": result.version.content_hash,
        "created": result.created,
        "labels_moved": list(result.labels_moved),
    }


# -- reading -------------------------------------------------------------------------------------------


@app.command("list")
def list_prompts(
    ctx: typer.Context,
    tag: Annotated[str | None, typer.Option(help="Only prompts with this tag.")] = None,
    search: Annotated[str | None, typer.Option(help="Only prompts whose name contains this text.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """List prompts: kind, latest version, labels and tags."""
    from rich.table import Table

    with readable_errors(), store_for(ctx) as store:
        rows = store.prompts.list_prompts(tag=tag, search=search)
    if as_json:
        echo_json(rows)
        return
    table = Table("name", "kind", "latest", "labels", "tags", "updated (UTC)")
    for row in rows:
        table.add_row(
            row["name"],
            row["kind"],
            f"v{row['latest_version']}",
            _labels_text(row["labels"]),
            ", ".join(row["tags"] or []),
            _when(row["updated_at"]),
        )
    _console().print(table)


@app.command()
def show(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help=_REFERENCE, show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the version as JSON.")] = False,
) -> None:
    """Show one version: its templates, variables, model, parameters and labels."""
    with readable_errors(), store_for(ctx) as store:
        version = store.prompts.get(reference)
        prompt = store.prompts.prompt(version.name)
    if as_json:
        echo_json({**version.as_dict(), "description": prompt["description"], "tags": prompt["tags"] or []})
        return
    _print_version(version, prompt)


def _print_version(version: PromptVersion, prompt: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    content = version.content
    on_this = f"  [green]{escape(', '.join(version.labels))}[/green]" if version.labels else ""
    console.print(
        f"[bold]{escape(version.name)}[/bold] v{version.number} ({content.kind}){on_this}  "
        f"sha256 {version.content_hash[:12]}"
    )
    said = f'"{version.message}"' if version.message else "no message"
    console.print(f"{said} by {version.author or 'unknown'}, {_when(version.created_at)} UTC", markup=False)
    if prompt["description"]:
        console.print(prompt["description"], markup=False)
    if prompt["labels"]:
        console.print(f"labels: {_labels_text(prompt['labels'])}", markup=False)
    if prompt["tags"]:
        console.print(f"tags: {', '.join(prompt['tags'])}", markup=False)
    if content.model:
        console.print(f"model: {content.model}", markup=False)
    if content.parameters:
        console.print(f"parameters: {json.dumps(content.parameters, ensure_ascii=False)}", markup=False)
    if content.variables:
        table = Table("variable", "type", "required", "default", "description", title="variables")
        for name, spec in content.variables.items():
            default = "" if spec.default is None else json.dumps(spec.default, ensure_ascii=False)
            table.add_row(name, spec.type, "yes" if spec.required else "", default, spec.description or "")
        console.print(table)
    if content.template is not None:
        console.rule("template", style="dim")
        console.print(content.template, markup=False)
    for message in content.messages or ():
        console.rule(message.role, style="dim")
        console.print(message.content, markup=False)


@app.command()
def versions(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt's name.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """List every version of a prompt, oldest first, with its labels, message and author."""
    from rich.table import Table

    with readable_errors(), store_for(ctx) as store:
        found = store.prompts.versions(name)
    if as_json:
        echo_json([version.as_dict() for version in found])
        return
    table = Table("version", "labels", "sha256", "message", "author", "created (UTC)")
    for version in found:
        table.add_row(
            f"v{version.number}",
            ", ".join(version.labels),
            version.content_hash[:12],
            version.message or "",
            version.author or "",
            _when(version.created_at),
        )
    _console().print(table)


@app.command()
def diff(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt's name.", show_default=False)],
    old: Annotated[str, typer.Argument(metavar="A", help="The older version (3 or v3).", show_default=False)],
    new: Annotated[str, typer.Argument(metavar="B", help="The newer version.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
) -> None:
    """Show what changed between two versions: model, parameters, variables, and the templates."""
    from rich.markup import escape

    first, second = _version_number(old, "A"), _version_number(new, "B")
    with readable_errors(), store_for(ctx) as store:
        result = store.prompts.diff(name, first, second)
    if as_json:
        echo_json(result.as_dict())
        return
    console = _console()
    console.print(f"[bold]{escape(name)}[/bold]: v{first} → v{second}")
    if not result.changes and not result.text:
        console.print("no changes")
    for change in result.changes:
        console.print(f"  {change}", markup=False)
    styles = {"+": "green", "-": "red", "@": "cyan"}
    for line in result.text:
        style = "bold" if line.startswith(("+++", "---")) else styles.get(line[:1])
        console.print(line, style=style, markup=False)


@app.command()
def history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt's name.", show_default=False)],
    label: Annotated[str | None, typer.Option("--label", "-l", help="Only this label.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON)] = False,
) -> None:
    """Show every label move (deploy, rollback, remove) with who and when, oldest first."""
    from rich.table import Table

    with readable_errors(), store_for(ctx) as store:
        events = store.prompts.history(name, label)
    if as_json:
        echo_json(events)
        return
    table = Table("when (UTC)", "label", "action", "from", "to", "by")
    for event in events:
        table.add_row(
            _when(event["created_at"]),
            event["label"],
            event["action"],
            f"v{event['from_version']}" if event["from_version"] else "",
            f"v{event['to_version']}" if event["to_version"] else "",
            event["author"] or "",
        )
    _console().print(table)


@app.command()
def render(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help=_REFERENCE, show_default=False)],
    var: Annotated[
        list[str] | None,
        typer.Option(
            "--var",
            "-v",
            help="NAME=VALUE, read as JSON when it parses (3, true, [1,2]), else as text. Repeatable.",
        ),
    ] = None,
    vars_file: Annotated[
        Path | None, typer.Option("--vars-file", help="A YAML or JSON file mapping variable names to values.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rendered prompt as JSON.")] = False,
) -> None:
    """Render a version with variables and print the messages (chat) or the text (text prompts)."""
    variables = _variables(var or [], vars_file)
    with readable_errors(), store_for(ctx) as store:
        version, rendered = store.prompts.render(reference, variables)
    if as_json:
        echo_json(
            {
                "name": version.name,
                "version": version.number,
                "kind": version.content.kind,
                "messages": rendered.messages,
                "text": rendered.text,
                "model": version.content.model,
                "parameters": version.content.parameters,
            }
        )
        return
    if rendered.text is not None:
        typer.echo(rendered.text)
        return
    for message in rendered.messages or []:
        typer.echo(f"[{message['role']}]")
        typer.echo(message["content"])


# -- writing -------------------------------------------------------------------------------------------


@app.command()
def push(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="A folder of prompt files (*.yaml, *.yml) or one file.", show_default=False)
    ],
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Store each prompt file as a version; the same content is the same version (pushing twice adds nothing).

    A folder is checked whole before anything is stored. The labels a file lists are moved to its version.
    """
    from llmops.prompts.services import read_prompt_file

    who = default_author(author)
    with readable_errors(), store_for(ctx) as store:
        if path.is_file():
            results = [store.prompts.push_file(read_prompt_file(path), author=who)]
        else:
            results = store.prompts.push_dir(path, author=who)
    if as_json:
        echo_json([_push_json(result) for result in results])
        return
    for result in results:
        typer.echo(_push_line(result))
    created = sum(result.created for result in results)
    typer.echo(f"{_count(len(results), 'prompt')}, {_count(created, 'new version')}", err=True)


@app.command()
def pull(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Where to write <name>.yaml files.", show_default=False)],
) -> None:
    """Write each prompt's latest version as a YAML file (pushing the folder back adds nothing)."""
    with readable_errors(), store_for(ctx) as store:
        written = store.prompts.pull_dir(folder)
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"{_count(len(written), 'prompt')} written to {folder}", err=True)


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt's name.", show_default=False)],
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A prompt file (YAML); its name, if any, is replaced by NAME."),
    ] = None,
    template: Annotated[str | None, typer.Option(help="A text prompt: its Jinja2 template.")] = None,
    system: Annotated[str | None, typer.Option(help="A chat prompt: the system message template.")] = None,
    user: Annotated[str | None, typer.Option(help="A chat prompt: the user message template.")] = None,
    model: Annotated[str | None, typer.Option(help="Default model.")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A default parameter, NAME=VALUE (JSON). Repeatable."),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="Point this label at the version. Repeatable.")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="What changed (commit message).")
    ] = None,
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
) -> None:
    """Store one version from a file, or a quick one from flags (its variables: required strings).

    `llmops prompts create greet --user 'Hello {{ name }}'` declares `name` and stores version 1.
    """
    from llmops.prompts.services import parse_prompt_file, read_prompt_file

    with readable_errors():
        if file is not None:
            if template or system or user:
                fail("give --file or --template/--system/--user, not both")
            spec = read_prompt_file(file, name=name)
        else:
            spec = _quick_prompt(name, template, system, user)
        overrides: dict[str, Any] = {"name": name}
        if model is not None:
            overrides["model"] = model
        if param:
            overrides["parameters"] = {**spec.parameters, **_variables(param, None, "--param")}
        if label:
            overrides["labels"] = [*spec.labels, *label]
        if message is not None:
            overrides["message"] = message
        spec = parse_prompt_file({**spec.model_dump(exclude_defaults=True), **overrides})
        with store_for(ctx) as store:
            result = store.prompts.push_file(spec, author=default_author(author))
    typer.echo(_push_line(result))


def _quick_prompt(name: str, template: str | None, system: str | None, user: str | None) -> PromptFile:
    from llmops.prompts.services import InvalidPrompt, parse_prompt_file
    from llmops.prompts.templates import RenderError, template_variables

    if template is not None and (system or user):
        fail("a prompt has a --template (text) or --system/--user messages (chat), not both")
    if template is None and not system and not user:
        fail("give --file, --template, or --system and/or --user")
    sources = [template] if template is not None else [text for text in (system, user) if text]
    try:
        used = sorted({variable for source in sources for variable in template_variables(source)})
    except RenderError as exc:
        raise InvalidPrompt(str(exc)) from None
    data: dict[str, Any] = {"name": name, "variables": {variable: {"required": True} for variable in used}}
    if template is not None:
        data.update(kind="text", template=template)
    else:
        roles = (("system", system), ("user", user))
        data.update(kind="chat", messages=[{"role": role, "content": text} for role, text in roles if text])
    return parse_prompt_file(data)


@app.command("label")
def set_label(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt's name.", show_default=False)],
    label: Annotated[str, typer.Argument(help="The label, e.g. production or staging.", show_default=False)],
    version: Annotated[str, typer.Argument(help="The version it points at from now on (4 or v4).")],
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
) -> None:
    """Point a label at a version: a deploy, kept in the label's history."""
    number = _version_number(version)
    with readable_errors(), store_for(ctx) as store:
        event = store.prompts.set_label(name, label, number, author=default_author(author))
    if event is None:
        typer.echo(f"{name}@{label} already points at v{number}")
    elif event["from_version"] is None:
        typer.echo(f"{name}@{label} → v{number}")
    else:
        typer.echo(f"{name}@{label}: v{event['from_version']} → v{number}")


@app.command()
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt's name.", show_default=False)],
    label: Annotated[str, typer.Argument(help="The label to move back.", show_default=False)],
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
) -> None:
    """Move a label back to the version it pointed at before its last deploy (repeat to go further back)."""
    with readable_errors(), store_for(ctx) as store:
        event = store.prompts.rollback(name, label, author=default_author(author))
    typer.echo(f"{name}@{label} rolled back: v{event['from_version']} → v{event['to_version']}")


@app.command()
def unlabel(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The prompt's name.", show_default=False)],
    label: Annotated[str, typer.Argument(help="The label to remove.", show_default=False)],
    author: Annotated[str | None, typer.Option(help=_AUTHOR)] = None,
) -> None:
    """Remove a label (requests for it fail from now on); kept in its history."""
    with readable_errors(), store_for(ctx) as store:
        event = store.prompts.remove_label(name, label, author=default_author(author))
    typer.echo(f"{name}@{label} removed (pointed at v{event['from_version']})")


prompt_tools.register(app)
