"""How `llmops registry` prints its answers: Rich tables and trees, no logic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmops.cli.dataset_views import _console, _short, _when

if TYPE_CHECKING:
    from llmops.registry.repository import ModelVersionInfo


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{alias}→{version}" for alias, version in aliases.items())


def print_models(found: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not found:
        _console().print("no registered models yet: `llmops registry register NAME --artefact KIND=PATH`")
        return
    table = Table("name", "latest", "versions", "aliases", "updated", "description")
    for item in found:
        table.add_row(
            item["name"],
            f"v{item['latest_version']}",
            str(item["versions"]),
            _aliases(item["aliases"]),
            _when(item["updated_at"]),
            _short(item.get("description") or ""),
        )
    _console().print(table)


def print_versions(versions: list[ModelVersionInfo]) -> None:
    from rich.table import Table

    table = Table("version", "aliases", "artefacts", "serving", "dataset", "created")
    for info in versions:
        table.add_row(
            info.ref,
            ", ".join(info.aliases),
            ", ".join(item.kind for item in info.artefacts),
            (info.serving or {}).get("provider", ""),
            info.dataset_ref or "",
            _when(info.created_at),
        )
    _console().print(table)


def print_version(info: ModelVersionInfo) -> None:
    from rich.table import Table

    console = _console()
    facts = Table(show_header=False, box=None)
    facts.add_column(style="bold")
    facts.add_column()
    rows = {
        "version": info.ref,
        "aliases": ", ".join(info.aliases),
        "description": info.description,
        "base model": info.base_model,
        "dataset": info.dataset_ref,
        "job": info.job_id,
        "source": _short(info.source) if info.source else None,
        "params": _short(info.params, 100) if info.params else None,
        "metrics": _short(info.metrics, 100) if info.metrics else None,
        "serving": _short(info.serving, 100) if info.serving else None,
        "created": f"{_when(info.created_at)} by {info.created_by or '?'}",
    }
    for name, value in rows.items():
        if value:
            facts.add_row(name, str(value))
    console.print(facts)
    if info.artefacts:
        table = Table("artefact", "size", "sha256", "uri")
        for item in info.artefacts:
            table.add_row(
                item.kind + ("/" if item.is_dir else ""), _size(item.bytes), item.sha256[:16], item.uri
            )
        console.print(table)


def print_alias_move(name: str, event: dict[str, Any]) -> None:
    alias, before, after = event["alias"], event["from_version"], event["to_version"]
    if not event.get("changed", True):
        _console().print(f"{name}@{alias} already points at version {after}")
    elif before is None:
        _console().print(f"{name}@{alias} → version {after}")
    else:
        _console().print(f"{name}@{alias}: version {before} → {after}")


def print_history(name: str, events: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not events:
        _console().print(f"no alias moves or deletions for {name} yet")
        return
    table = Table("when", "alias", "action", "from", "to", "by")
    for event in events:
        table.add_row(
            _when(event["at"]),
            event["alias"] or "",
            event["action"],
            "" if event["from_version"] is None else f"v{event['from_version']}",
            "" if event["to_version"] is None else f"v{event['to_version']}",
            event["by"] or "",
        )
    _console().print(table)


def print_lineage(nodes: list[dict[str, Any]]) -> None:
    console = _console()
    for node in nodes:
        console.print("  " * node["depth"] + ("└ " if node["depth"] else "") + _describe(node))


def _describe(node: dict[str, Any]) -> str:
    kind = node["kind"]
    if node.get("missing"):
        return f"{kind} {node.get('ref') or node.get('id')} (no longer stored)"
    if kind == "model_version":
        return f"{node['ref']} (registered {_when_text(node['created_at'])} by {node['created_by'] or '?'})"
    if kind == "job":
        return f"job {node['id']} ({node['job_kind']}, {node['status']})"
    if kind == "source":
        return "from " + ", ".join(f"{key} {value}" for key, value in node["source"].items())
    if kind == "base_model":
        return f"base model {node['name']}"
    if kind == "dataset_version":
        return f"dataset {node['ref']}: {node['operation']}, {node['rows']} rows"
    return "traces selected by " + (_short(node["selection"], 100) if node["selection"] else "no filter")


def _when_text(value: str) -> str:
    return value[:16].replace("T", " ")
