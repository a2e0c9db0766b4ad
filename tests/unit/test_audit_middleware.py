"""AuditMiddleware: one event per successful change under /api, none for reads, failures or audited routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine

from llmops.audit import REDACTED, AuditService
from llmops.gateway.auth import Principal
from llmops.server.admin import create_admin_app
from llmops.server.audit_recording import MAX_RECORDED_BODY, AuditMiddleware, mark_audited, record_change
from llmops.services import build_services
from llmops.settings import ModelConfig, load_settings
from llmops.store import open_database

CALLER = Principal(key_id="key_ops", name="ops", scope="admin", team_id="team_a")


def _caller(request: Request) -> Principal:
    request.state.principal = CALLER  # what the permission dependency does
    return CALLER


Caller = Annotated[Principal, Depends(_caller)]


def _app(audit: AuditService) -> FastAPI:
    app = FastAPI()

    @app.post("/api/things", operation_id="create_thing", tags=["things"], status_code=201)
    def create(_: Caller, body: dict[str, Any]) -> dict[str, Any]:
        return {"created": body.get("name")}

    @app.put("/api/things/{name}/labels/{label}", operation_id="set_label", tags=["things"])
    def label(_: Caller, name: str, label: str) -> dict[str, str]:
        return {"name": name, "label": label}

    @app.delete("/api/things/{name}", operation_id="delete_thing", tags=["things"])
    def delete(_: Caller, name: str) -> dict[str, str]:
        if name == "missing":
            raise HTTPException(404, "no such thing")
        return {"deleted": name}

    @app.get("/api/things", operation_id="list_things", tags=["things"])
    def listing(_: Caller) -> list[str]:
        return []

    @app.post("/api/render", operation_id="render_prompt", tags=["prompts"])
    def render(_: Caller) -> dict[str, str]:
        return {"text": "read only"}

    @app.post("/api/rich", operation_id="rich_change", tags=["things"])
    def rich(_: Caller, request: Request) -> dict[str, str]:
        record_change(request, audit, "rich_change", "thing", "x", before={"v": 1}, after={"v": 2})
        return {"ok": "yes"}

    @app.post("/api/quiet", operation_id="quiet_change")
    def quiet(_: Caller, request: Request) -> dict[str, str]:
        mark_audited(request)
        return {"ok": "yes"}

    @app.post("/api/stream/{name}")
    def stream(_: Caller, name: str) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for number in range(3):
                yield f"chunk {number}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.post("/api/upload", operation_id="upload", tags=["files"])
    async def upload(_: Caller, request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    app.add_middleware(AuditMiddleware, audit=audit)
    return app


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield engine
    engine.dispose()


@pytest.fixture
def audit(engine: Engine) -> AuditService:
    return AuditService(engine)


@pytest.fixture
def client(audit: AuditService) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_app(audit), client=("192.0.2.9", 5555))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _events(audit: AuditService) -> list[dict[str, Any]]:
    return list(reversed(audit.list().items))


async def test_a_successful_change_writes_one_event(client: httpx.AsyncClient, audit: AuditService) -> None:
    answer = await client.post("/api/things", json={"name": "a", "api_key": "upstream-secret", "n": 1})
    assert answer.status_code == 201
    [event] = _events(audit)
    assert event["action"] == "create_thing"
    assert (event["target_type"], event["target"]) == ("things", None)
    assert event["after"] == {"name": "a", "api_key": REDACTED, "n": 1}
    assert (event["actor"], event["actor_key_id"], event["team_id"]) == ("ops", "key_ops", "team_a")
    assert (event["source"], event["ip"]) == ("api", "192.0.2.9")


async def test_path_parameters_name_the_target(client: httpx.AsyncClient, audit: AuditService) -> None:
    assert (await client.put("/api/things/box/labels/prod")).status_code == 200
    assert (await client.delete("/api/things/box")).status_code == 200
    assert [(e["action"], e["target"], e["after"]) for e in _events(audit)] == [
        ("set_label", "box/prod", None),
        ("delete_thing", "box", None),
    ]


async def test_reads_failures_and_read_only_posts_write_nothing(
    client: httpx.AsyncClient, audit: AuditService
) -> None:
    assert (await client.get("/api/things")).status_code == 200
    assert (await client.delete("/api/things/missing")).status_code == 404
    assert (await client.post("/api/things", content=b"{not json")).status_code == 422
    assert (await client.post("/api/render")).status_code == 200
    assert (await client.post("/api/unknown")).status_code == 404
    assert _events(audit) == []


async def test_a_route_that_records_its_own_event_is_not_recorded_twice(
    client: httpx.AsyncClient, audit: AuditService
) -> None:
    assert (await client.post("/api/rich")).status_code == 200
    assert (await client.post("/api/quiet")).status_code == 200
    [event] = _events(audit)
    assert (event["action"], event["before"], event["after"]) == ("rich_change", {"v": 1}, {"v": 2})
    assert (event["actor"], event["ip"]) == ("ops", "192.0.2.9")


async def test_streamed_answers_pass_through_and_are_recorded(
    client: httpx.AsyncClient, audit: AuditService
) -> None:
    answer = await client.post("/api/stream/s1")
    assert answer.text == "chunk 0\nchunk 1\nchunk 2\n"
    [event] = _events(audit)
    assert (event["target_type"], event["target"]) == ("stream", "s1")  # no tag: the area of the path
    assert event["action"].startswith("stream_")  # FastAPI's generated operation id


async def test_bodies_that_are_not_json_are_described_not_stored(
    client: httpx.AsyncClient, audit: AuditService
) -> None:
    await client.post("/api/upload", content=b"a,b\n1,2\n", headers={"content-type": "text/csv"})
    big = b"x" * (MAX_RECORDED_BODY + 1)
    answer = await client.post("/api/upload", content=big, headers={"content-type": "application/json"})
    assert answer.json() == {"bytes": len(big)}  # the route still gets the whole body
    first, second = _events(audit)
    assert first["after"] == {"body": "8 bytes not recorded", "content_type": "text/csv"}
    assert second["after"]["body"].startswith("not recorded: larger than")


async def test_a_failure_to_record_never_changes_the_answer(
    client: httpx.AsyncClient, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE audit_event")
    answer = await client.post("/api/things", json={"name": "a"})
    assert answer.status_code == 201
    assert "could not record the audit event" in caplog.text


async def test_on_the_admin_api_it_records_routes_without_an_event_of_their_own(tmp_path: Path) -> None:
    """Installed around the real admin app: generic events for prompts, none added to a credential's."""
    settings = load_settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        models=(ModelConfig(name="e", provider="echo"),),
    )
    services = build_services(settings, open_allowed=True)
    audit = services.store.audit
    app = create_admin_app(services)  # the admin app installs the middleware itself
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4321))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            prompt = {"name": "greet", "kind": "text", "template": "Hi {{ who }}", "variables": {"who": {}}}
            assert (await client.post("/api/prompts", json=prompt)).status_code == 201
            assert (
                await client.put("/api/prompts/greet/labels/prod", json={"version": 1})
            ).status_code == 200
            assert (
                await client.post("/api/prompts/greet/render", json={"variables": {"who": "x"}})
            ).status_code == 200
            assert (await client.put("/api/credentials/c1", json={"secret": "sk-up-1234"})).status_code == 200
            assert (await client.get("/api/prompts")).status_code == 200
        events = _events(audit)
    finally:
        services.store.close()
    assert [(e["action"], e["target_type"], e["target"]) for e in events] == [
        ("create_prompt_version", "prompts", None),
        ("set_prompt_label", "prompts", "greet/prod"),
        ("set_credential", "credential", "c1"),
    ]
    assert events[0]["after"] == prompt
    assert {(e["actor"], e["ip"]) for e in events} == {("anonymous", "127.0.0.1")}  # open loopback mode
    assert "sk-up-1234" not in str(events)
