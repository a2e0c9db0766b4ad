"""Admin routes of datasets (/api/datasets): the service functions behind `llmops datasets`.

Reading, diffs, exports and rows sent in the body answer at once; work that reads whole versions or the
trace table (cleaning, imports from traces, profiles) runs as a job: the answer is 202 with the job,
whose progress and result are at /api/jobs/{id}. A recipe is checked before its job starts, so a bad
step or parameter is a 400 at once. A team's key sees and writes its team's datasets only (another
team's answers 404), and imports from traces take its team's traces only.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterable
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from llmops.datasets import operations
from llmops.gateway.auth import Principal
from llmops.jobs.service import JobContext, JobService
from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import NO_NUL, error_responses, link
from llmops.server.dataset_schema import (
    CleanIn,
    DatasetDetailOut,
    DatasetListOut,
    DatasetPath,
    DiffOut,
    JobOut,
    ProfileIn,
    RowPageOut,
    RowsIn,
    TracesIn,
    VersionOut,
    VersionPath,
    VersionQuery,
    VersionWriteOut,
)
from llmops.server.team_views import TeamDatasets
from llmops.services import Services

_NO_DATASET = {404: "No dataset has this name."}
_NO_VERSION = {404: "No such dataset or version."}
_JOB_LINK = {
    "GetJob": link("get_job", job_id="$response.body#/id"),
    "GetJobLogs": link("get_job_logs", job_id="$response.body#/id"),
    "CancelJob": link("cancel_job", job_id="$response.body#/id"),
}
_MEDIA = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "chat": "application/x-ndjson",
    "completion": "application/x-ndjson",
}


def _author(given: str | None, principal: Principal) -> str:
    return given if given is not None else principal.name


def dataset_routes(services: Services) -> APIRouter:
    """The datasets' routes; each sees the caller's team's datasets (and, from traces, its traces) only."""
    router = APIRouter(tags=["datasets"])
    _reading_routes(router)
    _writing_routes(router, services.store.jobs, services.settings.pii_salt)
    _export_route(router)
    return router


def _reading_routes(router: APIRouter) -> None:
    @router.get(
        "/api/datasets",
        operation_id="list_datasets",
        response_model=DatasetListOut,
        responses={
            200: {"links": {"GetDataset": link("get_dataset", name="$response.body#/data/0/name")}},
            **error_responses(),
        },
    )
    def list_datasets(datasets: TeamDatasets) -> dict[str, Any]:
        """Every dataset with its latest version and row count."""
        found = datasets.list_datasets()
        return {
            "data": [
                {
                    **{key: item[key] for key in ("name", "description", "latest_version", "created_by")},
                    "rows": item["row_count"],
                    "created_at": item["created_at"].isoformat(),
                    "updated_at": item["updated_at"].isoformat(),
                }
                for item in found
            ]
        }

    @router.get(
        "/api/datasets/{name}",
        operation_id="get_dataset",
        response_model=DatasetDetailOut,
        responses=error_responses(400, 404, descriptions=_NO_DATASET),
    )
    def get_dataset(datasets: TeamDatasets, name: DatasetPath) -> dict[str, Any]:
        """A dataset's versions with their lineage (parents, operation, parameters, who, when)."""
        return {"name": name, "versions": [version.to_dict() for version in datasets.versions(name)]}

    @router.get(
        "/api/datasets/{name}/versions/{version}",
        operation_id="get_dataset_version",
        response_model=VersionOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def get_version(datasets: TeamDatasets, name: DatasetPath, version: VersionPath) -> dict[str, Any]:
        """One version: its lineage and, for a cleaning run, each step's report."""
        return datasets.resolve(f"{name}@{version}").to_dict()

    @router.get(
        "/api/datasets/{name}/versions/{version}/rows",
        operation_id="list_dataset_rows",
        response_model=RowPageOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def list_rows(
        datasets: TeamDatasets,
        name: DatasetPath,
        version: VersionPath,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Rows to skip.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000, description="Rows in this page.")] = 100,
    ) -> dict[str, Any]:
        """A page of a version's rows, in order, each with its position and content hash."""
        found = datasets.resolve(f"{name}@{version}")
        rows = list(datasets.iter_rows(found, offset=offset, limit=limit))
        following = offset + len(rows)
        return {
            "data": [{"position": p, "hash": h, "row": row} for p, h, row in rows],
            "next_offset": following if following < found.row_count and len(rows) == limit else None,
        }

    @router.get(
        "/api/datasets/{name}/diff",
        operation_id="diff_dataset_versions",
        response_model=DiffOut,
        responses=error_responses(400, 404, descriptions=_NO_VERSION),
    )
    def diff(
        datasets: TeamDatasets,
        name: DatasetPath,
        base: VersionQuery,
        other: VersionQuery,
        key: Annotated[
            str | None, Query(max_length=200, pattern=NO_NUL, description="The field that identifies a row.")
        ] = None,
        examples: Annotated[int, Query(ge=0, le=100, description="Examples of each kind.")] = 5,
    ) -> dict[str, Any]:
        """Rows added, removed, changed and unchanged from version `base` to version `other`."""
        return operations.diff(
            datasets, f"{name}@{base}", f"{name}@{other}", key=key, examples=examples
        ).to_dict()


def _writing_routes(router: APIRouter, jobs: JobService, pii_salt: str | None) -> None:
    @router.post(
        "/api/datasets/{name}/rows",
        operation_id="add_dataset_rows",
        status_code=201,
        response_model=VersionWriteOut,
        responses={
            200: {
                "model": VersionWriteOut,
                "description": "The rows equal the latest version's: nothing new.",
            },
            **error_responses(
                400,
                404,
                descriptions={
                    404: "`append` to a dataset that does not exist, "
                    "or the name is taken by a dataset of another team."
                },
            ),
        },
    )
    def add_rows(
        principal: Caller, datasets: TeamDatasets, name: DatasetPath, body: RowsIn, response: Response
    ) -> dict[str, Any]:
        """Store the rows as the next version (the dataset is created if new)."""
        rows: Iterable[dict[str, Any]] = [row.to_row() for row in body.rows]
        parents: list[str] = []
        if body.append:
            latest = datasets.resolve(name)
            parents = [latest.ref]
            rows = itertools.chain(datasets.rows(latest), rows)  # streamed: the stored rows stay on disk
        result = datasets.create_version(
            name,
            rows,
            operation="import",
            params={"source": "api", "rows": len(body.rows), "append": body.append},
            parents=parents,
            message=body.message,
            author=_author(body.author, principal),
        )
        if not result.created:
            response.status_code = 200
        return {"version": result.version.to_dict(), "created": result.created}

    @router.post(
        "/api/datasets/{name}/from-traces",
        operation_id="import_dataset_from_traces",
        status_code=202,
        response_model=JobOut,
        responses={
            202: {"links": _JOB_LINK},
            **error_responses(
                400, 404, descriptions={404: "The name is taken by a dataset of another team."}
            ),
        },
    )
    def from_traces(
        principal: Caller, datasets: TeamDatasets, name: DatasetPath, body: TracesIn
    ) -> dict[str, Any]:
        """Start a job that turns the matching traces into the next version (its result names the version)."""
        from llmops.datasets.traces_source import selection_from_options

        options = body.model_dump(exclude={"message", "author"})
        selection = selection_from_options(**options)
        datasets.check_writable(name)  # another team's name: 404 now, not a failed job
        author = _author(body.author, principal)

        def work(context: JobContext) -> dict[str, Any]:
            result, counts = datasets.import_traces(
                name, selection, message=body.message, author=author, progress=context.progress
            )
            return {"version": result.version.to_dict(), "created": result.created, **vars(counts)}

        params = {"dataset": name, **body.model_dump(exclude_none=True)}
        return jobs.submit("dataset.from_traces", params, work, created_by=principal.name).to_dict()

    @router.post(
        "/api/datasets/{name}/clean",
        operation_id="clean_dataset",
        status_code=202,
        response_model=JobOut,
        responses={
            202: {"links": _JOB_LINK},
            **error_responses(
                400,
                404,
                descriptions={404: "No such dataset or version, or `into` is a dataset of another team."},
            ),
        },
    )
    def clean(principal: Caller, datasets: TeamDatasets, name: DatasetPath, body: CleanIn) -> dict[str, Any]:
        """Start a cleaning job; the recipe's steps and parameters are checked first (400 naming the step)."""
        from llmops.datasets.cleaning.base import StepContext, StepRegistry
        from llmops.datasets.cleaning.recipe import Recipe

        ref = name if body.version is None else f"{name}@{body.version}"
        source = datasets.resolve(ref)
        if body.into is not None:
            datasets.check_writable(body.into)
        recipe = Recipe.from_data(body.recipe, origin="recipe")
        recipe.build(StepRegistry(), StepContext())  # a bad step or parameter: 400 now, not a failed job
        author = _author(body.author, principal)

        def work(context: JobContext) -> dict[str, Any]:
            from llmops.pii import PiiService

            result = operations.clean(
                datasets,
                source.ref,
                recipe,
                into=body.into,
                author=author,
                message=body.message,
                pii=PiiService(salt=pii_salt),
                progress=context.progress,
            )
            return result.to_dict()

        params = {"dataset": source.ref, **body.model_dump(exclude_none=True)}
        return jobs.submit("dataset.clean", params, work, created_by=principal.name).to_dict()

    @router.post(
        "/api/datasets/{name}/versions/{version}/profile",
        operation_id="profile_dataset_version",
        status_code=202,
        response_model=JobOut,
        responses={202: {"links": _JOB_LINK}, **error_responses(400, 404, descriptions=_NO_VERSION)},
    )
    def profile(
        principal: Caller, datasets: TeamDatasets, name: DatasetPath, version: VersionPath, body: ProfileIn
    ) -> dict[str, Any]:
        """Start a job that profiles the version; the job's result is the profile."""
        found = datasets.resolve(f"{name}@{version}")

        def work(context: JobContext) -> dict[str, Any]:
            pii = None
            if body.pii:
                from llmops.pii import PiiService

                pii = PiiService(use_nlp=False)
            result = operations.profile(
                datasets,
                found.ref,
                pii=pii,
                near_duplicates=body.near_duplicates,
                sample=body.sample,
                progress=context.progress,
            )
            return result.to_dict()

        params = {"dataset": found.ref, **body.model_dump(exclude_none=True)}
        return jobs.submit("dataset.profile", params, work, created_by=principal.name).to_dict()


def _export_route(router: APIRouter) -> None:
    @router.get(
        "/api/datasets/{name}/versions/{version}/export",
        operation_id="export_dataset_version",
        response_class=FileResponse,
        responses={
            200: {
                "description": "The file.",
                "content": {
                    media: {"schema": {"type": "string", "format": "binary"}}
                    for media in set(_MEDIA.values())
                },
            },
            **error_responses(
                400,
                404,
                descriptions={**_NO_VERSION, 400: "A bad parameter, or rows that would break training."},
            ),
        },
    )
    def export(
        datasets: TeamDatasets,
        name: DatasetPath,
        version: VersionPath,
        format: Annotated[
            Literal["jsonl", "csv", "parquet", "chat", "completion"],
            Query(description="A file format, or chat / completion for fine-tuning JSONL."),
        ] = "jsonl",
        split: Annotated[
            float | None, Query(gt=0.0, lt=1.0, description="chat/completion: the train share, e.g. 0.9.")
        ] = None,
        part: Annotated[
            Literal["train", "validation"], Query(description="chat/completion with split: which part.")
        ] = "train",
        seed: Annotated[int, Query(ge=0, le=2**31 - 1, description="The split's seed.")] = 0,
        max_tokens: Annotated[int | None, Query(ge=1, le=10_000_000, description="Longest example.")] = None,
        on_invalid: Annotated[
            Literal["fail", "skip"], Query(description="Rows that would break training.")
        ] = "fail",
    ) -> FileResponse:
        """Download a version; fine-tuning formats are checked (400 lists the rows that break training)."""
        ref = f"{name}@{version}"
        folder = FilePath(tempfile.mkdtemp(prefix="llmops-export-"))
        cleanup = BackgroundTask(_remove, folder)
        try:
            if format in operations.FINETUNE_FORMATS:
                written = operations.export_finetune(
                    datasets,
                    ref,
                    file_format=format,
                    out_dir=folder,
                    split=split,
                    seed=seed,
                    max_tokens=max_tokens,
                    on_invalid=on_invalid,
                )
                path = written.files.get(part if split is not None else "train")
                if path is None:
                    path = folder / "empty.jsonl"
                    path.write_bytes(b"")
            else:
                path = folder / f"{name}-v{version}.{format}"
                operations.export_rows(datasets, ref, format, path)
        except BaseException:
            _remove(folder)
            raise
        filename = f"{name}-v{version}-{part}.jsonl" if format in operations.FINETUNE_FORMATS else path.name
        return FileResponse(path, media_type=_MEDIA[format], filename=filename, background=cleanup)


def _remove(folder: FilePath) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
