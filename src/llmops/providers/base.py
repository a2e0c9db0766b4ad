"""The provider contract: one small base class that every model backend implements.

A provider receives OpenAI-shaped request payloads (already validated by the gateway, with
``model`` still the public name) and answers in OpenAI's wire format: a whole JSON body, or
``text/event-stream`` bytes ending in ``data: [DONE]``. Speaking the wire format lets the
``openai`` provider pass upstream bytes through untouched, and lets the gateway trace every
provider the same way.

Errors (all :class:`ProviderError`, each carrying the HTTP status the client should see):
- :class:`UnsupportedRequest` (400): this model cannot do what was asked (tools, embeddings, ...).
- :class:`UpstreamRejected` (the upstream's 4xx, e.g. 400/404/422/429): the upstream refused it.
- :class:`UpstreamFailure` (502): the upstream failed, answered garbage or refused our credentials.
- :class:`UpstreamTimeout` (504): the upstream did not answer in time.
- :class:`ProviderUnavailable` (503): the backend is not loaded or cannot run here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from llmops.providers.tokens import TokenCounter
from llmops.settings import DeploymentConfig, Settings

Payload = dict[str, Any]
SSE_DONE = b"data: [DONE]\n\n"


RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "too many tokens",
)


class ProviderError(Exception):
    status: int = 502
    error_type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        body: bytes | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.body = body  # an upstream's own OpenAI-shaped error body, passed through when present
        self.param = param
        self.retry_after = retry_after  # seconds the upstream asked us to wait (Retry-After)

    @property
    def retryable(self) -> bool:
        """Worth trying again, elsewhere or later: overload, upstream failure, timeout, refused connection."""
        return self.status in RETRYABLE_STATUSES

    @property
    def context_exceeded(self) -> bool:
        """The upstream says the prompt does not fit its context window (a larger model may take it)."""
        if self.status not in (400, 413, 422):
            return False
        text = (self.message + " " + (self.body or b"").decode("utf-8", "replace")).lower()
        return any(marker in text for marker in _CONTEXT_MARKERS)


class ContextWindowExceeded(ProviderError):
    """The counted prompt is longer than the deployment's declared context window (never sent)."""

    status = 400
    error_type = "invalid_request_error"
    code = "context_length_exceeded"

    @property
    def context_exceeded(self) -> bool:
        return True


class UnsupportedRequest(ProviderError):
    status = 400
    error_type = "invalid_request_error"
    code = "unsupported"


class UpstreamRejected(ProviderError):
    error_type = "invalid_request_error"

    def __init__(
        self, message: str, *, status: int, body: bytes | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, body=body, retry_after=retry_after)
        self.status = status
        if status == 429:
            self.error_type = "rate_limit_error"
        elif status == 404:
            self.error_type = "not_found_error"


class UpstreamFailure(ProviderError):
    status = 502
    error_type = "upstream_error"


class UpstreamTimeout(ProviderError):
    status = 504
    error_type = "timeout_error"


class ProviderUnavailable(ProviderError):
    status = 503
    error_type = "service_unavailable"


@dataclass(slots=True)
class ProviderResult:
    """A whole answer: the body sent to the client, and the same body parsed for the trace."""

    body: bytes
    data: Payload

    @classmethod
    def from_data(cls, data: Payload) -> ProviderResult:
        return cls(orjson.dumps(data), data)


def sse_event(data: Payload) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


@dataclass
class ProviderContext:
    """What providers share inside one server: settings, a token counter and pooled resources.

    ``shared`` holds objects several provider instances use (one HTTP connection pool, one
    loaded model); each is created once through :meth:`resource` and closed at shutdown.
    ``credentials`` decrypts stored credentials by name (those that exist), for deployments that
    name one in ``api_key_credential``; the catalog calls it once per build.
    """

    settings: Settings
    tokens: TokenCounter = field(default_factory=TokenCounter)
    credentials: Callable[[Iterable[str]], Mapping[str, str]] | None = None
    _resources: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def resource(
        self, key: str, factory: Callable[[], Any], closer: Callable[[Any], Awaitable[None]] | None = None
    ) -> Any:
        if key not in self._resources:
            value = factory()
            self._resources[key] = value
            if closer is not None:
                self._closers.append(lambda: closer(value))
        return self._resources[key]

    async def aclose(self) -> None:
        closers, self._closers = self._closers, []
        self._resources.clear()
        for close in reversed(closers):
            await close()


class Provider:
    """Base class of every backend. Override what the backend can do; the rest answers 400."""

    name: ClassVar[str] = ""
    supports_tools: ClassVar[bool] = False
    # True when the provider applies the deployment's connect and total timeouts itself; otherwise
    # the router bounds each call by ``timeouts.total``
    enforces_timeouts: ClassVar[bool] = False

    def __init__(self, config: DeploymentConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context

    @property
    def upstream_model(self) -> str:
        return self.config.upstream_model

    async def start(self) -> None:
        """Load or connect; called once at server start, before :attr:`ready` is asked."""

    @property
    def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        """Release what this instance owns (shared resources are closed by the context)."""

    async def chat(self, payload: Payload) -> ProviderResult:
        raise self._unsupported("chat completions")

    def stream_chat(self, payload: Payload) -> AsyncIterator[bytes]:
        raise self._unsupported("streamed chat completions")

    async def complete(self, payload: Payload) -> ProviderResult:
        raise self._unsupported("text completions")

    def stream_complete(self, payload: Payload) -> AsyncIterator[bytes]:
        raise self._unsupported("streamed text completions")

    async def embed(self, payload: Payload) -> ProviderResult:
        raise self._unsupported("embeddings")

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` for usage when the backend reports none (offline cl100k by default)."""
        return self.context.tokens.count(text, self.upstream_model)

    def _unsupported(self, what: str) -> UnsupportedRequest:
        return UnsupportedRequest(f"model {self.config.name!r} does not support {what}", param="model")
