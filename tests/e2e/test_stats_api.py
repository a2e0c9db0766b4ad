"""GET /api/stats and `llmops stats` on a real server: rollups kept by the trace writer, against traces."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import openai
import pytest

from conftest import LLMOPS, Server, call_api, expect, get_json, server_env, start_server, wait_for


@pytest.fixture(scope="module")
def stats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("stats"),
        models=[{"name": "echo", "provider": "echo"}, {"name": "echo-b", "provider": "echo"}],
        keys={"admin": "admin", "app": "inference", "viewer": "viewer"},
    )
    yield running
    running.stop()


def _traffic(server: Server) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key=server.keys["app"], max_retries=0)
    for index in range(12):
        client.chat.completions.create(
            model="echo" if index % 3 else "echo-b", messages=[{"role": "user", "content": f"hello {index}"}]
        )
    for _ in range(2):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    stream = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "streamed"}], stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def _totals(server: Server, **params: str) -> dict[str, dict[str, object]]:
    answer = get_json(server, "/api/stats?" + "&".join(f"{k}={v}" for k, v in params.items()))
    return {"/".join(series["group"].values()) or "all": series["total"] for series in answer["series"]}


def test_stats_follow_the_traffic(stats_server: Server) -> None:
    _traffic(stats_server)
    wait_for(
        lambda: _totals(stats_server, since="1h", bucket="1m").get("all", {}).get("requests") == 15,
        timeout=15,
    )
    by_model = _totals(stats_server, since="1h", bucket="5m", group_by="model")
    assert by_model["echo"]["requests"] == 9
    assert by_model["echo-b"]["requests"] == 4
    assert by_model["no-such-model"]["errors"] == 2
    assert by_model["no-such-model"]["errors_by_type"] == {"not_found_error": 2}
    assert by_model["echo"]["latency_ms"]["p95"] is not None
    assert by_model["echo"]["ttft_ms"]["p50"] is not None  # the streamed request
    traces = get_json(stats_server, "/api/traces?limit=100")["data"]
    assert len(traces) == 15
    by_key = _totals(stats_server, since="1h", bucket="15m", group_by="key")
    assert sum(total["requests"] for total in by_key.values()) == 15


def test_feedback_shows_in_the_stats(stats_server: Server) -> None:
    trace = get_json(stats_server, "/api/traces?model=echo&limit=1")["data"][0]
    expect(call_api(stats_server, "POST", f"/api/traces/{trace['id']}/feedback", json={"thumb": "down"}), 201)
    totals = _totals(stats_server, since="1h", bucket="1h", group_by="model")
    assert totals["echo"]["feedback"]["thumbs_down"] == 1
    assert totals["echo"]["feedback"]["thumbs_down_rate"] == 1.0


def test_bad_queries_are_400(stats_server: Server) -> None:
    for query in ("bucket=7m", "group_by=colour", "since=soon", "since=30d&bucket=1m", "key=nobody"):
        response = call_api(stats_server, "GET", f"/api/stats?{query}")
        assert response.status_code in (400, 422), (query, response.text)
        assert "error" in response.json(), query


def test_cli_prints_a_table_with_sparklines(stats_server: Server) -> None:
    done = subprocess.run(
        [*LLMOPS, "stats", "--since", "1h", "--bucket", "5m", "--by", "model"],
        env=server_env(stats_server.home, stats_server.database_url, {"COLUMNS": "250"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "echo-b" in done.stdout
    assert "requests per bucket" in done.stdout
    assert any(char in done.stdout for char in "▁▂▃▄▅▆▇█")
    bad = subprocess.run(
        [*LLMOPS, "stats", "--bucket", "7m"],
        env=server_env(stats_server.home, stats_server.database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: bucket")


def test_a_team_key_sees_its_team_only(stats_server: Server) -> None:
    expect(call_api(stats_server, "POST", "/api/teams", json={"name": "search"}), 201)
    keys = {
        role: expect(
            call_api(
                stats_server,
                "POST",
                "/api/keys",
                json={"name": f"search-{role}", "role": role, "team": "search"},
            ),
            201,
        )["secret"]
        for role in ("inference", "viewer")
    }
    client = openai.OpenAI(base_url=stats_server.base_url, api_key=keys["inference"], max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "team traffic"}])

    def team_requests() -> int:
        response = httpx.get(
            f"{stats_server.url}/api/stats?since=1h&bucket=5m",
            headers={"authorization": f"Bearer {keys['viewer']}"},
        )
        series = response.json()["series"]
        return series[0]["total"]["requests"] if series else 0

    wait_for(lambda: team_requests() == 3, timeout=15)
    everything = _totals(stats_server, since="1h", bucket="5m")["all"]["requests"]
    assert isinstance(everything, int)
    assert everything > 3
    by_team = _totals(stats_server, since="1h", bucket="5m", group_by="team")
    assert by_team["search"]["requests"] == 3
