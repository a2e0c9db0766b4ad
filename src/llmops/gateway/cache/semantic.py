"""Semantic caching: embed the conversation, find a stored one close enough, within one scope.

:class:`Embedder` turns a conversation into a unit vector; :class:`SemanticIndex` keeps
(scope, vector → cache key) entries and answers nearest-neighbour queries by cosine similarity.
A scope is a hash of the endpoint, the model, the parameters, the system prompt and the tenant
(:func:`~llmops.gateway.cache.keys.semantic_scope`), so a search never sees another tenant's rows.

:func:`build_semantic` builds the pair a server uses: the embedded all-MiniLM-L6-v2 (shared with the
``local`` provider's embedding model through :meth:`ProviderContext.resource`, so it is loaded once)
and an in-memory index (:mod:`.vector_index`), shared through Redis when ``LLMOPS_REDIS_URL`` is set
(:mod:`.shared_index`). numpy, onnxruntime and tokenizers come with the ``local`` extra; they are
imported only when a model turns semantic mode on.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from llmops.providers._minilm import MiniLM
    from llmops.providers.base import ProviderContext
    from llmops.settings import Settings

Vector = Any  # a 1-D float32 numpy array of unit length

MINILM_DIMENSIONS = 384
MINILM_MAX_TOKENS = 254  # 256 with the [CLS] and [SEP] tokens; the model ignores what follows
INSTALL_HINT = (
    "the semantic cache needs the embedded MiniLM model: install the `local` extra "
    "(pip install 'llmops[local]')"
)


class Embedder:
    async def embed(self, text: str) -> Vector | None:
        """A unit vector for ``text``; None when the text is too long for the model to read whole."""
        raise NotImplementedError


class SemanticIndex:
    async def search(self, scope: str, vector: Vector, threshold: float) -> tuple[str, float] | None:
        """The key of the most similar live entry of ``scope`` and its similarity, if >= threshold."""
        raise NotImplementedError

    async def add(self, scope: str, vector: Vector, key: str, ttl: float) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections and threads."""


class ModelLoader(Protocol):
    """What :func:`llmops.providers.local.minilm_loader` returns: awaits the one shared load."""

    @property
    def value(self) -> MiniLM | None: ...

    async def get(self) -> MiniLM: ...


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 on onnxruntime, run in a worker thread (never on the event loop)."""

    def __init__(self, loader: ModelLoader) -> None:
        self.loader = loader

    async def embed(self, text: str) -> Vector | None:
        model = await self.loader.get()
        return await asyncio.to_thread(_embed, model, text)


def _embed(model: MiniLM, text: str) -> Vector | None:
    import numpy as np

    # a token covers at least one character, so only a long text can be cut off
    if len(text) > MINILM_MAX_TOKENS and model.count(text) > MINILM_MAX_TOKENS:
        return None  # the end (the latest question) would be cut off: compare exactly only
    return np.asarray(model.embed([text]).vectors[0], dtype=np.float32)


def build_semantic(settings: Settings, context: ProviderContext) -> tuple[SemanticIndex, Embedder]:
    """The index and the embedder of a server; raises ImportError when the ``local`` extra is missing."""
    missing = [
        name for name in ("numpy", "onnxruntime", "tokenizers") if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ImportError(f"{INSTALL_HINT}; missing: {', '.join(missing)}")
    from llmops.providers.local import default_minilm, minilm_loader

    if default_minilm() is None:
        raise ImportError(f"{INSTALL_HINT}; the packaged model files were not found")
    from llmops.gateway.cache.vector_index import MemorySemanticIndex

    embedder = MiniLMEmbedder(minilm_loader(context))
    index = MemorySemanticIndex(MINILM_DIMENSIONS, settings.semantic_cache_max_entries)
    if not settings.redis_url:
        return index, embedder
    from llmops.gateway.cache.redis_store import connect
    from llmops.gateway.cache.shared_index import RedisSharedIndex

    return RedisSharedIndex(index, connect(settings.redis_url)), embedder
