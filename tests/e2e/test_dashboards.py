"""The Grafana dashboard and the Prometheus alert rules in monitoring/.

They parse, have the shape Grafana and Prometheus load, and every metric they name (and every label
they group or filter by) exists in the /metrics of a real `llmops serve` that has answered a few
requests: echo (whole and streamed), a fake OpenAI upstream, and the embedded model when installed.
If promtool is on the PATH, it checks the rules and every dashboard query too (optional).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import Server, start_server
from fake_upstream import FakeUpstream
from llmops.providers.local import packaged_models

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana" / "llmops-dashboard.json"
RULES = ROOT / "monitoring" / "prometheus" / "llmops-alerts.yml"
# present only where NVML finds a GPU (tests/unit/test_resource_metrics.py checks them with a stand-in)
ONLY_WITH_NVML = {
    "llmops_gpu_utilization_ratio",
    "llmops_gpu_memory_used_bytes",
    "llmops_gpu_memory_total_bytes",
}
# labels Prometheus adds when it scrapes, and the bucket bound of histograms
SCRAPE_LABELS = {"instance", "job", "le"}
GRAFANA_VARIABLES = {"__rate_interval", "__range", "__interval"}
SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
METRIC = re.compile(r"\bllmops_[a-z0-9_]+\b")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")
# what the dashboard must show (issue 11): one metric for each subject at least
DASHBOARD_SUBJECTS = {
    "llmops_requests_total",
    "llmops_request_duration_seconds",
    "llmops_time_to_first_token_seconds",
    "llmops_tokens_total",
    "llmops_cost_usd_total",
    "llmops_cache_requests_total",
    "llmops_upstream_calls_total",
    "llmops_deployment_circuit_state",
    "llmops_ratelimit_rejections_total",
    "llmops_guardrail_decisions_total",
    "llmops_trace_queue_depth",
    "llmops_traces_written_total",
    "llmops_process_cpu_seconds_total",
    "llmops_process_resident_memory_bytes",
    "llmops_event_loop_lag_seconds",
    "llmops_local_model_tokens_total",
}
RULE_SUBJECTS = {
    "llmops_requests_total",
    "llmops_request_duration_seconds",
    "llmops_traces_dropped_total",
    "llmops_deployment_circuit_state",
    "llmops_budget_alerts_total",
    "llmops_event_loop_lag_distribution_seconds",
    "llmops_guardrail_decisions_total",
}


# -- reading the files ------------------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard_queries() -> list[str]:
    dashboard = _dashboard()
    queries = [
        target["expr"] for panel in _panels(dashboard["panels"]) for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["query"]["query"])
    return queries


def _rule_queries() -> list[str]:
    return [rule["expr"] for group in _rules()["groups"] for rule in group["rules"]]


def _names(query: str) -> set[str]:
    """The llmops metrics a query names (a histogram's _bucket/_sum/_count as the histogram)."""
    return {HISTOGRAM_SUFFIX.sub("", name) for name in METRIC.findall(query)}


def _labels(query: str) -> set[str]:
    """Labels a query groups by (``by (...)``, ``label_values(m, l)``) or filters on (``{l="..."}``)."""
    found: set[str] = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", query):
        found.update(label.strip() for label in group.split(",") if label.strip())
    for matchers in re.findall(r"\{([^}]*)\}", query):
        found.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    found.update(re.findall(r"label_values\([^,]+,\s*([a-zA-Z_][a-zA-Z0-9_]*)\)", query))
    return found


def _grafana_free(query: str) -> str:
    """The query as Prometheus receives it from Grafana (variables replaced)."""
    for variable, value in (("$__rate_interval", "1m"), ("$__range", "6h"), ("$__interval", "15s")):
        query = query.replace(variable, value)
    return re.sub(r"\$(instance|model)\b", ".*", query)


def _balanced(query: str) -> bool:
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for char in re.sub(r'"[^"]*"', '""', query):
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and query.count('"') % 2 == 0


# -- their shape ------------------------------------------------------------------------------------------


def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    dashboard = _dashboard()
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["title"]
    assert dashboard["uid"]
    assert dashboard["id"] is None
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    source = variables["DS_PROMETHEUS"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    panels = list(_panels(dashboard["panels"]))
    assert len({panel["id"] for panel in panels}) == len(panels)
    graphs = [panel for panel in panels if panel["type"] != "row"]
    assert len(graphs) >= 20
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        where = panel["gridPos"]
        assert where["x"] >= 0, panel["title"]
        assert 0 < where["w"] <= 24 - where["x"], panel["title"]
        cells = {
            (x, y)
            for x in range(where["x"], where["x"] + where["w"])
            for y in range(where["y"], where["y"] + where["h"])
        }
        assert not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells
    for panel in graphs:
        assert panel["type"] in {"timeseries", "stat", "state-timeline", "gauge", "bargauge", "table"}
        assert panel["title"]
        assert panel["description"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        targets = panel["targets"]
        assert targets
        assert len({target["refId"] for target in targets}) == len(targets)
        for target in targets:
            assert target["datasource"] == panel["datasource"]
            used = set(re.findall(r"\$(\w+)", target["expr"]))
            assert used <= set(variables) | GRAFANA_VARIABLES, (panel["title"], used)
            assert _balanced(target["expr"]), target["expr"]
    covered = set().union(*(_names(query) for query in _dashboard_queries()))
    assert not DASHBOARD_SUBJECTS - covered


def test_rules_are_prometheus_alerting_rules() -> None:
    groups = _rules()["groups"]
    assert len({group["name"] for group in groups}) == len(groups)
    rules = [rule for group in groups for rule in group["rules"]]
    assert len({rule["alert"] for rule in rules}) == len(rules) >= 10
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
        assert isinstance(rule["expr"], str), rule["alert"]
        assert _balanced(rule["expr"]), rule["alert"]
        assert DURATION.match(str(rule.get("for", "0s"))), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
    covered = set().union(*(_names(query) for query in _rule_queries()))
    assert not RULE_SUBJECTS - covered


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (optional check)")
def test_promtool_accepts_the_rules_and_the_dashboard_queries(tmp_path: Path) -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    recorded = [
        {"record": f"dashboard:query_{index}", "expr": _grafana_free(query)}
        for index, query in enumerate(_dashboard_queries())
        if not query.startswith("label_values(")
    ]
    queries = tmp_path / "dashboard-queries.yml"
    queries.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    checked = subprocess.run(["promtool", "check", "rules", str(queries)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- against a real server --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that answered echo (whole and streamed), a fake upstream and, if there, the local model."""
    models: list[dict[str, Any]] = [
        {"name": "echo", "provider": "echo", "input_price_per_1m": 1.0, "output_price_per_1m": 2.0},
        {"name": "gpt-fake", "provider": "openai", "base_url": upstream.base_url, "model": "fake-model"},
    ]
    local = bool(packaged_models())
    if local:
        models.append({"name": "smollm2", "provider": "local", "model": "SmolLM2-135M-Instruct"})
    server = start_server(
        tmp_path_factory.mktemp("dashboards"), models=models, keys={"app": "inference"}, ready_timeout=120
    )
    try:
        messages = [{"role": "user", "content": "Say hi."}]
        with httpx.Client(base_url=server.base_url, headers=server.headers("app"), timeout=60) as client:
            for model in ("echo", "gpt-fake", *(("smollm2",) if local else ())):
                for stream in (False, True):
                    body = {"model": model, "messages": messages, "max_tokens": 4, "stream": stream}
                    assert client.post("/chat/completions", json=body).status_code == 200
        yield server
    finally:
        server.stop()


def _scrape(server: Server) -> str:
    response = httpx.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def _exposition(
    server: Server,
) -> tuple[set[str], dict[str, set[str]], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """(names in HELP lines, labels seen per metric, samples) of one scrape."""
    text = _scrape(server)
    helped = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}
    labels: dict[str, set[str]] = {}
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            base = HISTOGRAM_SUFFIX.sub("", sample.name)
            labels.setdefault(base, set()).update(sample.labels)
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return helped, labels, samples


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_metric_named_exists_in_metrics(served: Server, source: str) -> None:
    helped, seen_labels, _ = _exposition(served)
    queries = _dashboard_queries() if source == "dashboard" else _rule_queries()
    for query in queries:
        names = _names(query)
        assert names or query.startswith("up{"), query  # `up`: Prometheus's own, per scrape target
        missing = {
            name for name in names - ONLY_WITH_NVML if name not in helped and f"{name}_total" not in helped
        }
        assert not missing, f"{source}: {sorted(missing)} not in /metrics, in: {query}"
        known = set().union(*(seen_labels.get(name, set()) for name in names))
        if known:  # labels can only be checked on metrics that have samples
            unknown = _labels(query) - known - SCRAPE_LABELS
            assert not unknown, f"{source}: labels {sorted(unknown)} not on {sorted(names)}, in: {query}"


def test_resource_metrics_of_a_real_server(served: Server, upstream: FakeUpstream) -> None:
    helped, _, samples = _exposition(served)
    assert samples[("llmops_process_cpu_seconds_total", ())] > 0
    assert samples[("llmops_process_resident_memory_bytes", ())] > 10_000_000
    assert samples[("llmops_process_open_fds", ())] > 0
    assert samples[("llmops_event_loop_lag_distribution_seconds_count", ())] > 0  # the probe runs
    assert samples[("llmops_event_loop_lag_seconds", ())] >= 0
    origin = upstream.base_url.rsplit("/", 1)[0]
    assert samples[("llmops_upstream_connections", (("state", "idle"), ("upstream", origin)))] >= 1
    assert samples[("llmops_upstream_connections", (("state", "active"), ("upstream", origin)))] == 0
    if packaged_models():
        tokens = [value for (name, _), value in samples.items() if name == "llmops_local_model_tokens_total"]
        busy = [
            value for (name, _), value in samples.items() if name == "llmops_local_model_busy_seconds_total"
        ]
        assert len(tokens) == len(busy) == 1
        assert 0 < tokens[0] <= 8
        assert busy[0] > 0
    if importlib.util.find_spec("pynvml") is None:
        assert not ONLY_WITH_NVML & helped
