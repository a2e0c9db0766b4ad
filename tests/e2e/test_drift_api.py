"""/api/drift and `llmops drift report` on a real server: traffic through /v1 with the echo model in two
windows (the older one moved two days back in the database), and a planted shift the checks flag."""

from __future__ import annotations

import random
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import openai
import pytest
from sqlalchemy import bindparam, func, select, update

from conftest import LLMOPS, Server, call_api, expect, get_json, server_env, start_server, wait_for
from drift_support import REFERENCE_MIX, SHIFTED_MIX, prompts
from llmops.providers.local import default_minilm
from llmops.store import open_database
from llmops.store.tables import traces

pytest.importorskip("py3langid")

PER_WINDOW = 120


def _send(client: openai.OpenAI, texts: list[str]) -> None:
    for text in texts:
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": text}])


@pytest.fixture(scope="module")
def drift_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two windows of echo traffic: 120 English prompts two days ago, 120 now of which 30% are German."""
    server = start_server(
        tmp_path_factory.mktemp("drift"),
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin", "viewer": "viewer"},
    )
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.keys["admin"], max_retries=0)
        rng = random.Random(21)
        engine = open_database(server.database_url)
        try:

            def stored() -> int:
                with engine.connect() as connection:
                    return int(connection.execute(select(func.count()).select_from(traces)).scalar_one())

            _send(client, prompts(rng, PER_WINDOW, REFERENCE_MIX))
            wait_for(lambda: stored() == PER_WINDOW, timeout=20)
            with engine.begin() as connection:  # the reference window: two days ago
                moved = [
                    {"trace_id": row.id, "moved": row.started_at - timedelta(days=2)}
                    for row in connection.execute(select(traces.c.id, traces.c.started_at))
                ]
                connection.execute(
                    update(traces)
                    .where(traces.c.id == bindparam("trace_id"))
                    .values(started_at=bindparam("moved")),
                    moved,
                )
            _send(client, prompts(rng, PER_WINDOW, SHIFTED_MIX))
            wait_for(lambda: stored() == 2 * PER_WINDOW, timeout=20)
        finally:
            engine.dispose()
        yield server
    finally:
        server.stop()


def test_the_planted_shift_is_flagged(drift_server: Server) -> None:
    body = {"model": "echo", "reference": "3d..1d", "current": "1h", "seed": 1}
    report = expect(call_api(drift_server, "POST", "/api/drift", json=body), 201)
    assert report["reference"]["traces"] == PER_WINDOW
    assert report["current"]["traces"] == PER_WINDOW
    checks = {check["name"]: check for check in report["checks"]}
    language = checks["language"]
    assert language["status"] == "drift"
    assert language["p_value"] < 0.01
    assert language["p_adjusted"] < 0.01
    assert report["drifted"] is True
    assert report["score"] >= language["effect"] > 0.15
    assert checks["error_rate"]["status"] == "ok"
    if default_minilm() is not None:  # the local extra: MiniLM embeddings
        assert checks["embedding"]["p_value"] < 0.01
        assert checks["new_topics"]["status"] == "drift"
        examples = [
            text for cluster in checks["new_topics"]["details"]["clusters"] for text in cluster["examples"]
        ]
        assert any("Kreditkarte" in text or "Rechnung" in text for text in examples)

    listed = get_json(drift_server, "/api/drift?model=echo", key="viewer")["data"]
    assert [row["id"] for row in listed] == [report["id"]]
    assert listed[0]["p_values"]["language"] == language["p_value"]
    assert get_json(drift_server, f"/api/drift/{report['id']}") == report
    page = call_api(drift_server, "GET", f"/api/drift/{report['id']}/html", key="viewer")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]  # no script, nothing fetched
    ET.fromstring(page.text.split("\n", 1)[1])
    assert page.text.count("<svg") >= 4


def test_bad_requests_and_roles(drift_server: Server) -> None:
    for body, status in (
        ({"current": "1h..2h"}, 400),
        ({"current": "soon"}, 400),
        ({"reference": "3d..2d12h"}, 400),
        ({"reference": "7d..1d", "dataset": "golden"}, 400),
        ({"checks": ["colour"]}, 400),
        ({"sample": 5}, 400),
        ({"dataset": "missing@1"}, 404),
    ):
        response = call_api(drift_server, "POST", "/api/drift", json=body)
        assert response.status_code == status, (body, response.text)
        assert "message" in response.json()["error"]
    forbidden = call_api(drift_server, "POST", "/api/drift", key="viewer", json={"current": "1h"})
    assert forbidden.status_code == 403
    assert call_api(drift_server, "GET", f"/api/drift/{'f' * 32}").status_code == 404
    assert call_api(drift_server, "GET", "/api/drift/not-an-id").status_code == 400


def test_cli_writes_the_html_report(drift_server: Server, tmp_path: Path) -> None:
    out = tmp_path / "drift.html"
    done = subprocess.run(
        [*LLMOPS, "drift", "report", "--model", "echo", "--reference", "3d..1d", "--current", "1h"]
        + ["--check", "language", "--check", "prompt_length", "--html", str(out)],
        env=server_env(drift_server.home, drift_server.database_url, {"COLUMNS": "200"}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"drift in [^\n]*Language mix", done.stdout), done.stdout
    assert f"wrote {out}" in done.stdout
    assert "<svg" in out.read_text()
