"""The generic JSON webhook: POST the notification's JSON (see :meth:`Notification.as_json`) to a URL.

Any 2xx answer is a delivery; another status, a timeout or a refused connection is a
:class:`ChannelError` (the dispatcher retries it).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, StringConstraints

from llmops.alerts.channels.base import Channel, ChannelError, ChannelOptions, Notification

URL = Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://[^\s\x00]+$")]
HEADER_NAME = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")]
HEADER_VALUE = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\r\n\x00]*$")]


class WebhookOptions(ChannelOptions):
    url: URL = Field(description="Where the JSON is POSTed (http or https).")
    headers: dict[HEADER_NAME, HEADER_VALUE] = Field(
        default_factory=dict, description="Extra request headers, e.g. an Authorization token."
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Time for one attempt.")


async def post_json(url: str, body: Any, headers: dict[str, str], timeout: float) -> None:
    """POST ``body`` as JSON; ChannelError unless the answer is 2xx."""
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(url, json=body, headers=headers) as response,
        ):
            if response.status >= 300:
                text = (await response.text(errors="replace"))[:200].replace("\n", " ")
                raise ChannelError(f"{url} answered {response.status}: {text}")
    except TimeoutError:
        raise ChannelError(f"{url} did not answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise ChannelError(f"{url}: {type(exc).__name__}: {exc}") from None


class WebhookChannel(Channel):
    kind: ClassVar[str] = "webhook"
    Options: ClassVar[type[ChannelOptions]] = WebhookOptions

    async def send(self, notification: Notification) -> None:
        options = self.options
        assert isinstance(options, WebhookOptions)
        headers = {"User-Agent": "llmops-alerts", **options.headers}
        await post_json(options.url, notification.as_json(), headers, options.timeout_seconds)
