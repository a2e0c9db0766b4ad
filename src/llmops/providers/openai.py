"""The ``openai`` provider: any upstream that speaks OpenAI's HTTP API.

OpenAI itself, vLLM, Ollama, llama.cpp's server, TGI, LiteLLM... One pooled keep-alive
aiohttp session serves every model of this kind. Answers are passed through byte for byte
(streams chunk by chunk, as they arrive); only ``model`` is rewritten on the way up.
Parameters in ``params``: ``headers`` (extra request headers). Time limits come from the
deployment's ``timeouts`` (connect and total here; the first-token limit is the router's).
An upstream's ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms`` travels on the error.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from llmops.providers.base import (
    Payload,
    Provider,
    ProviderContext,
    ProviderResult,
    UpstreamFailure,
    UpstreamRejected,
    UpstreamTimeout,
)
from llmops.settings import DeploymentConfig

_PASSED_THROUGH_STATUSES = frozenset({400, 404, 409, 413, 422, 429})


def _new_session(context: ProviderContext) -> aiohttp.ClientSession:
    settings = context.settings
    # limit_per_host equal to limit never binds before limit does; it makes aiohttp count the
    # connections in use per upstream, which llmops_upstream_connections reports
    connector = aiohttp.TCPConnector(
        limit=settings.upstream_max_connections,
        limit_per_host=settings.upstream_max_connections,
        keepalive_timeout=30,
        ttl_dns_cache=300,
    )
    timeout = aiohttp.ClientTimeout(
        total=settings.upstream_timeout_seconds, sock_connect=settings.upstream_connect_timeout_seconds
    )
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, json_serialize=lambda value: orjson.dumps(value).decode()
    )


async def _close_session(session: aiohttp.ClientSession) -> None:
    await session.close()


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """What an upstream asked us to wait, from ``retry-after-ms`` or ``Retry-After``; None if absent."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class CredentialsRefused(UpstreamFailure):
    """The upstream refused the gateway's own key (401/403): a 502 for the client, whose key is fine,
    but answered at once like the 401 it is: retrying would be refused again."""

    @property
    def retryable(self) -> bool:
        return False


def _upstream_message(body: bytes, status: int) -> str:
    try:
        error = orjson.loads(body).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (orjson.JSONDecodeError, AttributeError):
        message = None
    return str(message or body[:200].decode("utf-8", "replace").strip() or f"HTTP {status}")


class OpenAIProvider(Provider):
    name = "openai"
    supports_tools = True
    enforces_timeouts = True

    def __init__(self, config: DeploymentConfig, context: ProviderContext) -> None:
        super().__init__(config, context)
        if not config.base_url:
            raise ValueError(f"model {config.name!r}: the openai provider needs base_url")
        self._base_url = config.base_url.rstrip("/")
        self._headers = {"Content-Type": "application/json", **config.params.get("headers", {})}
        api_key = config.api_key()
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        limits = config.timeouts
        self._timeout = (
            aiohttp.ClientTimeout(total=limits.total, sock_connect=limits.connect)
            if limits.total is not None or limits.connect is not None
            else None
        )
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = self.context.resource(
            "openai.http", lambda: _new_session(self.context), _close_session
        )

    @property
    def connector(self) -> aiohttp.BaseConnector | None:
        """The connection pool shared by this server's ``openai`` models, once started (for metrics)."""
        return self._session.connector if self._session is not None else None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("OpenAIProvider.start() was not awaited")
        return self._session

    async def _post(self, path: str, payload: Payload) -> aiohttp.ClientResponse:
        body = orjson.dumps({**payload, "model": self.upstream_model})
        url = self._base_url + path
        kwargs: dict[str, Any] = {"data": body, "headers": self._headers}
        if self._timeout is not None:
            kwargs["timeout"] = self._timeout
        try:
            response = await self._http().post(url, **kwargs)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream {self._base_url} did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(f"upstream {self._base_url} failed: {exc}") from exc
        if response.status != 200:
            await self._raise_for_status(response)
        return response

    async def _raise_for_status(self, response: aiohttp.ClientResponse) -> None:
        try:
            body = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            body = b""
        finally:
            response.release()
        message = _upstream_message(body, response.status)
        wait = retry_after_seconds(response.headers)
        if response.status in _PASSED_THROUGH_STATUSES:
            raise UpstreamRejected(message, status=response.status, body=body, retry_after=wait)
        if response.status in (401, 403):
            raise CredentialsRefused(
                f"upstream refused the gateway's credentials ({response.status}): {message}"
            )
        if response.status == 504:
            raise UpstreamTimeout(f"upstream timed out: {message}")
        raise UpstreamFailure(f"upstream answered {response.status}: {message}", retry_after=wait)

    async def _whole(self, path: str, payload: Payload) -> ProviderResult:
        response = await self._post(path, payload)
        try:
            body = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream {self._base_url} did not finish in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(f"upstream {self._base_url} broke off: {exc}") from exc
        finally:
            response.release()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamFailure(f"upstream {self._base_url} answered invalid JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamFailure(f"upstream {self._base_url} answered JSON that is not an object")
        return ProviderResult(body, data)

    async def _stream(self, path: str, payload: Payload) -> AsyncIterator[bytes]:
        response = await self._post(path, payload)
        try:
            async for chunk in response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream {self._base_url} stalled mid-stream") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(f"upstream {self._base_url} broke off mid-stream: {exc}") from exc
        finally:
            response.release()

    async def chat(self, payload: Payload) -> ProviderResult:
        return await self._whole("/chat/completions", payload)

    def stream_chat(self, payload: Payload) -> AsyncIterator[bytes]:
        return self._stream("/chat/completions", payload)

    async def complete(self, payload: Payload) -> ProviderResult:
        return await self._whole("/completions", payload)

    def stream_complete(self, payload: Payload) -> AsyncIterator[bytes]:
        return self._stream("/completions", payload)

    async def embed(self, payload: Payload) -> ProviderResult:
        return await self._whole("/embeddings", payload)
