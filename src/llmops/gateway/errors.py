"""Gateway errors in OpenAI's shape, so the official client raises its own typed exceptions.

``{"error": {"message", "type", "param", "code"}}`` with the matching status: 400 bad request,
401 bad key, 403 wrong scope, 404 unknown model, 413 body too large, 429, 502/504 upstream.
"""

from __future__ import annotations

import orjson

from llmops.providers.base import ProviderError

_DEFAULT_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        body: bytes | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or _DEFAULT_TYPES.get(status, "api_error")
        self.param = param
        self.code = code
        self._body = body
        self.headers = headers or []  # extra response headers: Allow, Retry-After, ...

    def body(self) -> bytes:
        if self._body is not None:
            return self._body
        error = {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}
        return orjson.dumps({"error": error})

    @classmethod
    def from_provider(cls, exc: ProviderError) -> GatewayError:
        """Keep an upstream's own error body when it is OpenAI-shaped JSON."""
        body = exc.body if exc.body and exc.body.lstrip().startswith(b"{") else None
        if body is not None:
            try:
                parsed = orjson.loads(body)
                if not isinstance(parsed, dict) or not isinstance(parsed.get("error"), dict):
                    body = None
            except orjson.JSONDecodeError:
                body = None
        headers = []
        if exc.retry_after is not None:
            headers.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
        return cls(
            exc.status,
            exc.message,
            error_type=exc.error_type,
            param=exc.param,
            code=exc.code,
            body=body,
            headers=headers,
        )


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param)
