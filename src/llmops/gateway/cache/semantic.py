"""Semantic caching: embed the conversation, find a stored one close enough, within one scope.

:class:`Embedder` turns a conversation into a unit vector; :class:`SemanticIndex` keeps
(scope, vector → cache key) entries and answers nearest-neighbour queries by cosine similarity.
"""

from __future__ import annotations

from typing import Any

Vector = Any  # a 1-D float32 numpy array of unit length


class Embedder:
    async def embed(self, text: str) -> Vector:
        raise NotImplementedError


class SemanticIndex:
    async def search(self, scope: str, vector: Vector, threshold: float) -> tuple[str, float] | None:
        """The key of the most similar live entry of ``scope`` and its similarity, if >= threshold."""
        raise NotImplementedError

    async def add(self, scope: str, vector: Vector, key: str, ttl: float) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections and threads."""
