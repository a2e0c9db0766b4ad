"""The OpenAI-compatible /v1 routes as bare ASGI handlers: the gateway's hot path.

No framework middleware, no per-request models: look up the route, check the key against the
in-memory cache, read the body, hand it to the gateway service, send its bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from llmops.gateway.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, Endpoint
from llmops.gateway.errors import GatewayError
from llmops.gateway.service import StreamReply
from llmops.prompts.experiments import USER_HEADER
from llmops.server.asgi import (
    JSON_HEADERS,
    SSE_HEADERS,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    send_bytes,
    send_error,
)
from llmops.services import Services

log = logging.getLogger("llmops.server")

_POST_ROUTES: dict[str, Endpoint] = {}
for _prefix in ("/v1", ""):
    _POST_ROUTES[f"{_prefix}/chat/completions"] = CHAT
    _POST_ROUTES[f"{_prefix}/completions"] = COMPLETIONS
    _POST_ROUTES[f"{_prefix}/embeddings"] = EMBEDDINGS
_MODERATIONS = frozenset({"/v1/moderations", "/moderations"})
del _prefix


class OpenAIRoutes:
    """Handles /v1/*; answers None from :meth:`match` for paths it does not own."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._gateway = services.gateway
        self._authenticator = services.authenticator
        self._limit = services.settings.max_body_bytes

    @staticmethod
    def owns(path: str) -> bool:
        return path.startswith("/v1/") or path in _POST_ROUTES or path in _MODERATIONS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        try:
            client = scope.get("client")
            principal = await self._authenticator.authenticate(
                header(scope, b"authorization"), client[0] if client else None
            )
            endpoint = _POST_ROUTES.get(path)
            if endpoint is not None:
                if scope["method"] != "POST":
                    raise GatewayError(405, f"{path} accepts POST only", headers=[(b"allow", b"POST")])
                body = await read_body(scope, receive, self._limit)
                reply = await self._gateway.handle(
                    endpoint,
                    principal,
                    body,
                    header(scope, b"x-llmops-cache"),
                    user_header=header(scope, USER_HEADER),
                    traceparent=header(scope, b"traceparent"),
                )
                if isinstance(reply, StreamReply):
                    await _stream(reply, receive, send)
                else:
                    await send_bytes(send, reply.status, reply.body, [*JSON_HEADERS, *reply.headers])
                return
            if path in _MODERATIONS:
                if scope["method"] != "POST":
                    raise GatewayError(405, f"{path} accepts POST only", headers=[(b"allow", b"POST")])
                body = await read_body(scope, receive, self._limit)
                whole = await self._gateway.moderate(principal, body)
                await send_bytes(send, whole.status, whole.body, [*JSON_HEADERS, *whole.headers])
                return
            await self._models(path, scope, send)
        except GatewayError as error:
            await send_error(send, error)
        except ClientDisconnected:
            return
        except Exception:  # boundary: a bug of ours still answers in OpenAI's shape, and is logged
            log.exception("unexpected error on %s", path)
            await send_error(
                send, GatewayError(500, "internal error in the gateway; see its log", error_type="api_error")
            )

    async def _models(self, path: str, scope: Scope, send: Send) -> None:
        if scope["method"] != "GET":
            raise GatewayError(405, f"{path} accepts GET only", headers=[(b"allow", b"GET")])
        catalog = self._gateway.catalog
        if path == "/v1/models":
            await send_bytes(send, 200, catalog.listing_body)
            return
        if path.startswith("/v1/models/"):
            name = path[len("/v1/models/") :]
            card = catalog.card_body(name)
            if card is None:
                raise GatewayError(
                    404, f"the model {name!r} does not exist", param="model", code="model_not_found"
                )
            await send_bytes(send, 200, card)
            return
        raise GatewayError(404, f"unknown endpoint {path}", code="unknown_url")


async def _stream(reply: StreamReply, receive: Receive, send: Send) -> None:
    """Send SSE chunks as they come; stop the upstream as soon as the client goes away."""
    chunks = reply.chunks()
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        headers = [*SSE_HEADERS, *reply.headers]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for chunk in chunks:
            if watcher.done():
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError as exc:  # the client went away mid-send; the trace records status 499
        log.debug("stream client disconnected: %s", exc)
    finally:
        watcher.cancel()
        await chunks.aclose()
        await reply.close()  # only does something if the first send failed before chunks() began
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        continue
