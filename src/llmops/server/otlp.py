"""``POST /otlp/v1/traces``: an OTLP/HTTP trace receiver, as a collector answers one.

A bare ASGI handler like the /v1 routes: the API key is checked by the same authenticator (any key
that may call /v1 may send spans; its team sees them), the body is read up to ``max_body_bytes``, and
:class:`~llmops.tracing.otel.ingest.OtlpIngest` stores it. The answer is an
``ExportTraceServiceResponse`` in the request's encoding, with ``partial_success`` for rejected spans.
Errors are OpenAI-shaped JSON: 400 a body that does not parse, 401 no or a bad key, 405 not POST,
413 too large, 415 not protobuf or JSON (or an encoding other than gzip), 503 the spans cannot be
stored now (OTLP senders retry).
"""

from __future__ import annotations

import logging

from llmops.errors import UserError
from llmops.gateway.auth import Authenticator
from llmops.gateway.errors import GatewayError
from llmops.server.asgi import (
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    send_bytes,
    send_error,
)
from llmops.tracing.otel.ingest import PROTOBUF, OtlpIngest, SpansNotStored, media_type

log = logging.getLogger("llmops.server")

PATH = "/otlp/v1/traces"
_PROTOBUF_HEADERS = [(b"content-type", PROTOBUF.encode())]
_JSON_HEADERS = [(b"content-type", b"application/json")]


class OtlpRoute:
    def __init__(self, authenticator: Authenticator, ingest: OtlpIngest, max_body_bytes: int) -> None:
        self._authenticator = authenticator
        self._ingest = ingest
        self._limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            client = scope.get("client")
            principal = await self._authenticator.authenticate(
                header(scope, b"authorization"), client[0] if client else None
            )
            if scope["method"] != "POST":
                raise GatewayError(405, f"{PATH} accepts POST only", headers=[(b"allow", b"POST")])
            media_type(header(scope, b"content-type"))  # 415 before a body we cannot read is received
            body = await read_body(scope, receive, self._limit)
            result = await self._ingest.ingest(
                body,
                header(scope, b"content-type"),
                header(scope, b"content-encoding"),
                principal.key_id,
            )
            headers = _JSON_HEADERS if result.json else _PROTOBUF_HEADERS
            await send_bytes(send, 200, OtlpIngest.response(result), headers)
        except UserError as error:
            kind = "invalid_request_error" if error.status < 500 else None
            await send_error(
                send,
                GatewayError(
                    error.status, error.message, error_type=kind, param=error.param, code=error.code
                ),
            )
        except SpansNotStored as error:
            retry = [(b"retry-after", b"5")]
            await send_error(send, GatewayError(503, str(error), code="spans_not_stored", headers=retry))
        except GatewayError as error:
            await send_error(send, error)
        except ClientDisconnected:
            return
        except Exception:  # boundary: a bug of ours still answers in OpenAI's shape, and is logged
            log.exception("unexpected error on %s", PATH)
            await send_error(send, GatewayError(500, "internal error in the OTLP receiver; see its log"))
