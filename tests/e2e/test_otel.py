"""OpenTelemetry end to end: an application instrumented with the real OpenTelemetry SDK sends its spans
to /otlp/v1/traces and calls the gateway with a traceparent; the gateway's trace joins the caller's
trace, GET /api/traces/{id} and `llmops traces show` show the tree, and the gateway exports its spans
to a local OTLP receiver."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from conftest import LLMOPS, Server, server_env, start_server, wait_for
from otel_support import OtlpReceiver

OTLP_PATH = "/otlp/v1/traces"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def otel_server(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("otel"),
        models=[{"name": "echo", "provider": "echo", "input_price_per_1m": 1.0, "output_price_per_1m": 2.0}],
        keys={"admin": "admin", "app": "inference"},
        env={
            "LLMOPS_OTLP_ENDPOINT": receiver.url,
            "LLMOPS_OTLP_PROTOCOL": "http/json",
            "LLMOPS_OTLP_FLUSH_SECONDS": "0.1",
            "LLMOPS_OTLP_HEADERS": "x-collector-key=abc%20def",
        },
    )
    yield running
    running.stop()


def _provider(server: Server, *, compression: Compression = Compression.NoCompression) -> TracerProvider:
    exporter = OTLPSpanExporter(
        endpoint=f"{server.url}{OTLP_PATH}", headers=server.headers("app"), compression=compression
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "agent-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _trace(server: Server, trace_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/traces/{trace_id}", headers=server.headers("admin"))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _names(node: dict[str, Any]) -> dict[str, Any]:
    return {child["name"]: _names(child) for child in node["children"]}


def test_an_instrumented_agent_run_is_one_tree(
    otel_server: Server, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    provider = _provider(otel_server, compression=Compression.Gzip)
    tracer = provider.get_tracer("agent")
    client = openai.OpenAI(base_url=otel_server.base_url, api_key=otel_server.keys["app"], max_retries=0)
    with tracer.start_as_current_span("agent run", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as direct:
            # a call the application makes to its provider directly, described by GenAI attributes
            direct.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "echo",
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 500,
                    "gen_ai.response.finish_reasons": ["stop"],
                }
            )
        with tracer.start_as_current_span("execute_tool search") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            headers: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(headers, context=set_span_in_context(tool))
            raw = client.chat.completions.with_raw_response.create(
                model="echo",
                messages=[{"role": "user", "content": "through the gateway"}],
                extra_headers=headers,
            )
    provider.shutdown()
    otel_trace_id = format_trace_id(root.get_span_context().trace_id)
    tool_span_id = format_span_id(tool.get_span_context().span_id)
    gateway_id = raw.headers["x-llmops-trace-id"]

    def whole_tree() -> dict[str, Any] | None:
        detail = _trace(otel_server, gateway_id)
        roots = detail["tree"]
        return detail if len(roots) == 1 and len(roots[0]["children"]) == 2 else None

    detail = wait_for(whole_tree)
    assert (detail["otel_trace_id"], detail["otel_parent_span_id"]) == (otel_trace_id, tool_span_id)
    (root_node,) = detail["tree"]
    assert (root_node["kind"], root_node["name"], root_node["service"]) == ("span", "agent run", "agent-app")
    assert _names(root_node) == {"chat gpt-4o-mini": {}, "execute_tool search": {"chat echo": {}}}
    direct_node, tool_node = root_node["children"]
    assert (direct_node["kind"], direct_node["model"]) == ("trace", "echo")
    assert (direct_node["prompt_tokens"], direct_node["completion_tokens"]) == (1000, 500)
    assert direct_node["cost"] == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)  # at the echo model's prices
    (gateway_node,) = tool_node["children"]
    assert (gateway_node["trace_id"], gateway_node["current"], gateway_node["service"]) == (
        gateway_id,
        True,
        "llmops",
    )
    ingested = _trace(otel_server, direct_node["trace_id"])
    assert (ingested["endpoint"], ingested["provider"], ingested["api_key_id"]) == (
        "otlp",
        "openai",
        detail["api_key_id"],
    )
    assert ingested["tree"][0]["name"] == "agent run"
    assert ingested["tree"][0]["children"][0]["current"]

    exported = wait_for(
        lambda: [span for span in receiver.received() if span.attributes.get("llmops.trace_id") == gateway_id]
    )
    (span,) = exported
    assert (span.trace_id, span.parent_span_id) == (otel_trace_id, tool_span_id)
    assert span.attributes["gen_ai.request.model"] == "echo"
    assert span.attributes["gen_ai.provider.name"] == "echo"
    assert span.attributes["llmops.api_key_id"] == detail["api_key_id"]
    assert span.content_type == "application/json"
    assert receiver.requests[-1]["x-collector-key"] == "abc def"
    assert not [span for span in receiver.received() if span.attributes.get("llmops.endpoint") == "otlp"]

    shown = subprocess.run(
        [*LLMOPS, "traces", "show", gateway_id],
        env=server_env(otel_server.home, otel_server.database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"OpenTelemetry trace {otel_trace_id}" in shown.stdout
    assert "agent run" in shown.stdout
    assert "this trace" in shown.stdout
    metrics = httpx.get(f"{otel_server.url}/metrics").text
    assert "llmops_otlp_spans_exported_total" in metrics


def test_json_and_gzip_posts_answer_as_a_collector(otel_server: Server) -> None:
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "retrieve",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000100000000",
    }
    bad = {**span, "spanId": "0000000000000000"}
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span, bad]}]}]})
    headers = {**otel_server.headers("app"), "content-type": "application/json", "content-encoding": "gzip"}
    response = httpx.post(f"{otel_server.url}{OTLP_PATH}", content=gzip.compress(body), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"
    protobuf = httpx.post(
        f"{otel_server.url}{OTLP_PATH}",
        content=b"",  # an empty export is a valid one
        headers={**otel_server.headers("app"), "content-type": "application/x-protobuf"},
    )
    assert protobuf.status_code == 200
    assert protobuf.headers["content-type"] == "application/x-protobuf"
    assert protobuf.content == b""


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("application/x-protobuf", b"\xff\xff\xff\xff", 400, "invalid_otlp_body"),
        ("application/json", b"{not json", 400, "invalid_otlp_body"),
        ("text/plain", b"hello", 415, "unsupported_media_type"),
    ],
)
def test_bad_bodies_get_openai_shaped_errors(
    otel_server: Server, content_type: str, body: bytes, status: int, code: str
) -> None:
    response = httpx.post(
        f"{otel_server.url}{OTLP_PATH}",
        content=body,
        headers={**otel_server.headers("app"), "content-type": content_type},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def test_ingest_needs_a_key_and_post(otel_server: Server) -> None:
    anonymous = httpx.post(
        f"{otel_server.url}{OTLP_PATH}", content=b"", headers={"content-type": "application/json"}
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    got = httpx.get(f"{otel_server.url}{OTLP_PATH}", headers=otel_server.headers("app"))
    assert (got.status_code, got.headers["allow"]) == (405, "POST")


def test_an_invalid_traceparent_is_ignored(otel_server: Server) -> None:
    client = openai.OpenAI(base_url=otel_server.base_url, api_key=otel_server.keys["app"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="echo",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"traceparent": "00-not-valid-01"},
    )
    assert raw.http_response.status_code == 200
    trace_id = raw.headers["x-llmops-trace-id"]
    detail = wait_for(lambda: _found(otel_server, trace_id))
    assert detail["otel_trace_id"] is None
    (node,) = detail["tree"]
    assert (node["trace_id"], node["current"], node["children"]) == (trace_id, True, [])


def _found(server: Server, trace_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{server.url}/api/traces/{trace_id}", headers=server.headers("admin"))
    return dict(response.json()) if response.status_code == 200 else None


def test_an_unsupported_content_type_is_refused_before_its_body_is_read(otel_server: Server) -> None:
    too_large = b"x" * (8 * 1024 * 1024 + 1)  # over the default max_body_bytes: read, it would be a 413
    response = httpx.post(
        f"{otel_server.url}{OTLP_PATH}",
        content=too_large,
        headers={**otel_server.headers("app"), "content-type": "text/plain"},
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
