"""Where a registered version came from: its job, its origin, its dataset version and that version's
ancestors back to their roots (a root built from production traces shows which traces it selected).

The answer is a flat list in depth-first order, each node with its ``depth``, so that a CLI can draw
it as a tree and a client can read it without walking a nested structure.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from llmops.datasets.service import DatasetNotFound, DatasetService
from llmops.jobs.tables import jobs
from llmops.registry.repository import ModelVersionInfo

MAX_DATASET_NODES = 200  # a lineage is read by people; a cleaning chain this long is already absurd


def version_lineage(info: ModelVersionInfo, engine: Engine, datasets: DatasetService) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = [
        {
            "depth": 0,
            "kind": "model_version",
            "ref": info.ref,
            "created_at": info.created_at.isoformat(),
            "created_by": info.created_by,
            "description": info.description,
        }
    ]
    if info.job_id is not None:
        nodes.append(_job_node(engine, info.job_id))
    if info.source:
        nodes.append({"depth": 1, "kind": "source", "source": info.source})
    if info.base_model is not None:
        nodes.append({"depth": 1, "kind": "base_model", "name": info.base_model})
    if info.dataset is not None:
        ref = info.dataset_ref
        assert ref is not None
        nodes.extend(_dataset_nodes(datasets, ref))
    return nodes


def _job_node(engine: Engine, job_id: str) -> dict[str, Any]:
    query = select(jobs.c.kind, jobs.c.status, jobs.c.created_at, jobs.c.finished_at).where(
        jobs.c.id == job_id
    )
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return {"depth": 1, "kind": "job", "id": job_id, "missing": True}
    return {
        "depth": 1,
        "kind": "job",
        "id": job_id,
        "job_kind": row.kind,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


def _dataset_nodes(datasets: DatasetService, root: str) -> list[dict[str, Any]]:
    """The dataset version ``root`` and its ancestors, depth first; each version once."""
    nodes: list[dict[str, Any]] = []
    seen: set[str] = set()
    waiting: list[tuple[str, int]] = [(root, 1)]
    while waiting and len(nodes) < MAX_DATASET_NODES:
        ref, depth = waiting.pop()
        if ref in seen:
            continue
        seen.add(ref)
        try:
            version = datasets.resolve(ref)
        except DatasetNotFound:
            nodes.append({"depth": depth, "kind": "dataset_version", "ref": ref, "missing": True})
            continue
        nodes.append(
            {
                "depth": depth,
                "kind": "dataset_version",
                "ref": version.ref,
                "operation": version.operation,
                "params": version.params,
                "parents": version.parents,
                "rows": version.row_count,
                "created_at": version.created_at.isoformat(),
                "author": version.author,
            }
        )
        if version.operation == "from_traces":
            nodes.append({"depth": depth + 1, "kind": "traces", "selection": version.params or {}})
        waiting.extend((parent, depth + 1) for parent in reversed(version.parents))
    return nodes
