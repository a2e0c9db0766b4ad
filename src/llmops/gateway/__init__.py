"""The gateway: authentication, validation, caching, routing to deployments, tracing of every request.

Errors: :class:`GatewayError` (OpenAI-shaped, carries its HTTP status);
:class:`InvalidKeyRequest` from the key service.
"""

from llmops.gateway.auth import ANONYMOUS, Authenticator, Principal, require_admin
from llmops.gateway.catalog import ModelCatalog, ModelRoute, configured_models
from llmops.gateway.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, Endpoint
from llmops.gateway.errors import GatewayError
from llmops.gateway.keys import SCOPES, CreatedKey, InvalidKeyRequest, KeyService
from llmops.gateway.router import Router
from llmops.gateway.service import Gateway, StreamReply, WholeReply

__all__ = [
    "ANONYMOUS",
    "CHAT",
    "COMPLETIONS",
    "EMBEDDINGS",
    "SCOPES",
    "Authenticator",
    "CreatedKey",
    "Endpoint",
    "Gateway",
    "GatewayError",
    "InvalidKeyRequest",
    "KeyService",
    "ModelCatalog",
    "ModelRoute",
    "Principal",
    "Router",
    "StreamReply",
    "WholeReply",
    "configured_models",
    "require_admin",
]
