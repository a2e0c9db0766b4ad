"""Helpers shared by the drift tests: prompt populations by topic and language, and a small embedder.

The embedder stands in for MiniLM where a test is about the checks' plumbing, not the model: a bag of
hashed words, unit length, so that prompts sharing words are close and a new topic (or language) is far.
"""

from __future__ import annotations

import hashlib
import random
import re
from datetime import datetime, timedelta
from typing import Any

from llmops.ids import new_id

TEMPLATES = {
    ("billing", "en"): [
        "How do I update the credit card on my account {n}?",
        "Why was I charged twice for invoice {n} this month?",
        "Can I get a refund for order {n}, it arrived broken?",
    ],
    ("shipping", "en"): [
        "Where is my parcel {n}, the tracking page has not changed?",
        "How long does delivery to postcode {n} usually take?",
    ],
    ("billing", "de"): [
        "Wie ändere ich die Kreditkarte für mein Konto {n}?",
        "Warum wurde mir die Rechnung {n} zweimal berechnet?",
    ],
    ("travel", "en"): [
        "Which museums in Lisbon are open on Monday {n}?",
        "Plan a three day hiking trip in the Alps for a group of {n}.",
    ],
}


def prompts(rng: random.Random, count: int, mix: dict[tuple[str, str], float]) -> list[str]:
    """``count`` prompts drawn from the templates with the given weights."""
    keys, weights = list(mix), list(mix.values())
    return [
        rng.choice(TEMPLATES[rng.choices(keys, weights)[0]]).format(n=rng.randint(1, 9999))
        for _ in range(count)
    ]


REFERENCE_MIX = {("billing", "en"): 0.6, ("shipping", "en"): 0.4}
SHIFTED_MIX = {("billing", "en"): 0.42, ("shipping", "en"): 0.28, ("billing", "de"): 0.3}


class WordHashEmbedder:
    """Unit vectors of hashed words (64 dimensions)."""

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        vectors = []
        for text in texts:
            vector = [0.0] * 64
            for word in re.findall(r"[^\W\d]+", text.lower()):
                vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
            norm = sum(value * value for value in vector) ** 0.5 or 1.0
            vectors.append([value / norm for value in vector])
        return vectors


def trace_row(when: datetime, prompt: str, **fields: Any) -> dict[str, Any]:
    """A trace row as the writer stores it, made at ``when``, echoing ``prompt`` unless told otherwise."""
    row: dict[str, Any] = {
        "id": new_id(),
        "started_at": when,
        "ended_at": when + timedelta(milliseconds=5),
        "endpoint": "chat.completions",
        "requested_model": "echo",
        "stream": False,
        "status": "ok",
        "status_code": 200,
        "latency_ms": 5.0,
        "request": {
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
        },
        "response_text": prompt,
    }
    row.update(fields)
    return row
