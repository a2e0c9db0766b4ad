"""Helpers shared by the response-cache tests: a settable clock, plans, and a small fake embedder."""

from __future__ import annotations

import hashlib
import re
import socket

import numpy as np

from llmops.gateway.cache import CachePlan
from llmops.gateway.cache.semantic import Embedder, Vector


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_plan(key: str, ttl: float = 60.0, *, lookup: bool = True, store: bool = True) -> CachePlan:
    return CachePlan("model", key, ttl, lookup, store)


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WordsEmbedder(Embedder):
    """A stand-in for MiniLM: a bag of lower-cased words hashed into 64 dimensions, unit length.

    Texts with the same words in another order or case are identical; one changed word in a short
    text lowers the similarity a lot. Texts longer than ``max_chars`` are "too long" (None).
    """

    dimensions = 64

    def __init__(self, max_chars: int = 10_000) -> None:
        self.max_chars = max_chars
        self.calls = 0

    async def embed(self, text: str) -> Vector | None:
        self.calls += 1
        if len(text) > self.max_chars:
            return None
        vector = np.zeros(self.dimensions, dtype=np.float32)
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=2).digest()
            vector[int.from_bytes(digest, "little") % self.dimensions] += 1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else None
