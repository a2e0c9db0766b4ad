"""Model backends behind one base class, found by name in a registry.

See :mod:`llmops.providers.base` for the contract and the error hierarchy.
"""

from llmops.providers.base import (
    SSE_DONE,
    Payload,
    Provider,
    ProviderContext,
    ProviderError,
    ProviderResult,
    ProviderUnavailable,
    UnsupportedRequest,
    UpstreamFailure,
    UpstreamRejected,
    UpstreamTimeout,
    sse_event,
)
from llmops.providers.registry import ENTRY_POINT_GROUP, ProviderConfigError, ProviderRegistry

__all__ = [
    "ENTRY_POINT_GROUP",
    "SSE_DONE",
    "Payload",
    "Provider",
    "ProviderConfigError",
    "ProviderContext",
    "ProviderError",
    "ProviderRegistry",
    "ProviderResult",
    "ProviderUnavailable",
    "UnsupportedRequest",
    "UpstreamFailure",
    "UpstreamRejected",
    "UpstreamTimeout",
    "sse_event",
]
