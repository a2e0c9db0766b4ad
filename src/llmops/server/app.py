"""The ASGI application: lean /v1 handlers, probes and metrics, the admin API, and the lifespan.

Dispatch is a dictionary lookup on the path, so the hot path never enters FastAPI's
middleware and routing; FastAPI serves the admin API where its validation is worth it.
"""

from __future__ import annotations

import logging

import orjson

from llmops.server.admin import create_admin_app
from llmops.server.asgi import Receive, Scope, Send, send_bytes
from llmops.server.openai_api import OpenAIRoutes
from llmops.server.otlp import PATH as OTLP_PATH
from llmops.server.otlp import OtlpRoute
from llmops.services import Services

log = logging.getLogger("llmops.server")

PROMETHEUS_HEADERS = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]


class LLMOpsApp:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._openai = OpenAIRoutes(services)
        self._otlp = OtlpRoute(services.authenticator, services.otlp_ingest, services.settings.max_body_bytes)
        self._admin = create_admin_app(services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if OpenAIRoutes.owns(path):
                await self._openai(scope, receive, send)
            elif path == OTLP_PATH:
                await self._otlp(scope, receive, send)
            elif path == "/metrics":
                await send_bytes(send, 200, self.services.metrics_registry.render(), PROMETHEUS_HEADERS)
            elif path == "/healthz":
                await send_bytes(send, 200, b'{"status":"ok"}')
            elif path == "/readyz":
                await self._readyz(send)
            else:
                await self._admin(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self._admin(scope, receive, send)

    async def _readyz(self, send: Send) -> None:
        database = await self.services.database_ok()
        loading = self.services.catalog.not_ready()
        ready = database and not loading
        body = {
            "status": "ready" if ready else "not ready",
            "database": database,
            "models_not_ready": loading,
        }
        await send_bytes(send, 200 if ready else 503, orjson.dumps(body))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.services.start()
                except Exception as exc:  # boundary: report the failure to the server, which exits
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.services.stop()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return
