"""The ``topics`` guardrail: a text about a denied topic, or about none of the allowed ones.

Each topic is a name and a few example sentences. The examples and the text are embedded with the
packaged all-MiniLM-L6-v2 (the ``local`` extra, on onnxruntime, the model of the semantic cache),
and the text is about a topic when its cosine similarity to one of the topic's examples reaches
``threshold``. A text is split into sentences (very short ones joined to the next, long ones cut into
windows the model reads whole) and each is compared, as well as the whole text when it is short,
so one off-limits sentence in a long prompt is not averaged away. Reading costs about 0.1 ms a
character, so only the last ``max_chars`` characters (default 4,000) of a longer text are read, the
end of a conversation being its newest message; ``details["unread_chars"]`` says how much was left.

The default threshold, 0.4, comes from ``tests/unit/guardrails/test_guard_topics.py``: with three
examples a topic, paraphrases of a topic scored 0.45-0.77 there, unrelated requests 0.22 at most,
and requests that only share words with a topic ("vote in the poll on your website" against
politics) up to 0.38. MiniLM misses paraphrases far from every example ("Should abortion be
legal?" scored 0.22 against three election questions): give each topic examples of its different
facets.

The model loads on the first check (1-2 s), once, under a lock; ``slow`` is set, so the engine runs
the check in a worker thread. onnxruntime sessions are thread-safe. Measured on 2 cores: ~6-8 ms for one
sentence, ~25-35 ms for a 220-character prompt of three sentences, ~0.1 s for 1,500 characters,
~0.3-0.5 s for 4,000 (a busy machine gives the higher figures).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmops.guardrails.base import (
    PASS,
    CheckContext,
    Guardrail,
    GuardrailError,
    Verdict,
    param,
    unknown_params,
)
from llmops.guardrails.minilm import load_minilm, require_minilm

DEFAULT_THRESHOLD = 0.4
DEFAULT_MAX_CHARS = 4_000  # about 1,000 tokens: ~0.3-0.5 s on 2 cores
_KNOWN = ("deny", "allow", "threshold", "max_chars")
_WHO = "guardrail 'topics'"
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;:。！？])\s+|\s*\n\s*")
_MIN_PIECE_CHARS = 24  # "Hi there." alone says little; it is joined to the next sentence
_MAX_PIECE_CHARS = 800  # about 200 tokens: the model reads at most 256
_SIMILAR_LENGTH = 1.5  # texts batched together: the longest at most this many times the shortest


@dataclass(frozen=True, slots=True)
class _Examples:
    """The unit vectors of every example (one row each) and the topic each row belongs to."""

    vectors: Any  # float32 array, rows x 384
    topics: tuple[str, ...]
    denied: Any  # bool array: the row's topic is denied (else allowed)


class TopicGuardrail(Guardrail):
    """Deny and/or allow topics described by example sentences; see the module docstring."""

    kind = "topics"
    slow = True

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        unknown_params(params, _KNOWN, self.kind)
        self.deny = _topics(params, "deny")
        self.allow = _topics(params, "allow")
        if not self.deny and not self.allow:
            raise GuardrailError(
                "guardrail 'topics' needs 'deny' or 'allow' (topic name -> example sentences), or both",
                param="deny",
            )
        overlap = sorted(set(self.deny) & set(self.allow))
        if overlap:
            raise GuardrailError(
                f"guardrail 'topics': {overlap[0]!r} is both denied and allowed", param="allow"
            )
        self.threshold: float = float(param(params, "threshold", (int, float), DEFAULT_THRESHOLD))
        if not 0 < self.threshold <= 1:
            raise GuardrailError(
                f"guardrail parameter 'threshold' must be above 0 and at most 1, not {self.threshold}",
                param="threshold",
            )
        self.max_chars: int = param(params, "max_chars", int, DEFAULT_MAX_CHARS)
        if self.max_chars < 1:
            raise GuardrailError(
                f"guardrail parameter 'max_chars' must be at least 1, not {self.max_chars}", param="max_chars"
            )
        require_minilm(_WHO)
        self._model: Any = None
        self._examples: _Examples | None = None
        self._lock = threading.Lock()

    def check(self, text: str, context: CheckContext) -> Verdict:
        pieces, unread = _pieces(_encodable(text), self.max_chars)
        if not pieces:
            return PASS
        import numpy as np

        model, examples = self._loaded()
        best = (_embed(model, pieces) @ examples.vectors.T).max(axis=0)  # per example: its closest piece
        denied = examples.denied.any()
        if denied:
            row = int(np.argmax(np.where(examples.denied, best, -2.0)))
        if not denied or (self.allow and best[row] < self.threshold):
            row = int(np.argmax(np.where(examples.denied, -2.0, best)))
        topic, similarity = examples.topics[row], round(float(best[row]), 4)
        details: dict[str, Any] = {"topic": topic, "similarity": similarity}
        if unread:
            details["unread_chars"] = unread
        if examples.denied[row]:
            if similarity < self.threshold:
                return Verdict(False, max(similarity, 0.0), details=details)
            reason = f"about the denied topic {topic!r} (similarity {similarity:.2f} >= {self.threshold:g})"
            return Verdict(True, min(similarity, 1.0), reason, details=details)
        if similarity >= self.threshold:
            return Verdict(False, details=details)
        reason = (
            f"about none of the allowed topics (closest: {topic!r},"
            f" similarity {similarity:.2f} < {self.threshold:g})"
        )
        return Verdict(True, min(1.0, 1.0 - max(similarity, 0.0)), reason, details=details)

    def _loaded(self) -> tuple[Any, _Examples]:
        """The model and the examples' vectors, built by the first caller while the others wait."""
        if self._examples is None:
            with self._lock:
                if self._examples is None:
                    self._model = load_minilm(_WHO)
                    self._examples = _embed_examples(self._model, self.deny, self.allow)
        return self._model, self._examples


def _topics(params: Mapping[str, Any], name: str) -> dict[str, list[str]]:
    topics = param(params, name, dict, {})
    for topic, examples in topics.items():
        if not (isinstance(topic, str) and topic and isinstance(examples, list) and examples) or not all(
            isinstance(example, str) and example.strip() for example in examples
        ):
            raise GuardrailError(
                f"guardrail parameter {name!r} maps each topic name to a non-empty list of example"
                f" sentences; {topic!r} has {examples!r}",
                param=name,
            )
    return {topic: [example.strip() for example in examples] for topic, examples in topics.items()}


def _embed_examples(model: Any, deny: dict[str, list[str]], allow: dict[str, list[str]]) -> _Examples:
    import numpy as np

    rows = [(topic, example, True) for topic, examples in deny.items() for example in examples]
    rows += [(topic, example, False) for topic, examples in allow.items() for example in examples]
    vectors = np.asarray(
        model.embed([_encodable(example) for _, example, _ in rows]).vectors, dtype=np.float32
    )
    return _Examples(
        vectors, tuple(topic for topic, _, _ in rows), np.array([denied for _, _, denied in rows], dtype=bool)
    )


def _embed(model: Any, texts: list[str]) -> Any:
    """Unit vectors of ``texts`` (rows, in order), batching only texts of similar length.

    A batch is padded to its longest text, so one long piece batched with short ones costs as much as
    that many long ones: a 200-character sentence and two short ones took 21 ms together, 13 ms apart.
    """
    import numpy as np

    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    batches: list[list[int]] = []
    for index in order:
        if batches and len(texts[index]) <= _SIMILAR_LENGTH * len(texts[batches[-1][0]]) + 8:
            batches[-1].append(index)
        else:
            batches.append([index])
    vectors: list[list[float]] = [[] for _ in texts]
    for batch in batches:
        rows = model.embed([texts[index] for index in batch]).vectors
        for index, row in zip(batch, rows, strict=True):
            vectors[index] = row
    return np.asarray(vectors, dtype=np.float32)


def _pieces(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[list[str], int]:
    """What to embed for ``text`` (see the module docstring), and how many characters are left unread."""
    pieces: list[str] = []
    pending = ""
    for sentence in _SENTENCE_BREAK.split(text):
        pending = f"{pending} {sentence}".strip() if pending else sentence.strip()
        if len(pending) >= _MIN_PIECE_CHARS:
            pieces.extend(_windows(pending))
            pending = ""
    if pending:
        pieces.extend(_windows(pending))
    budget, first = max_chars, len(pieces)
    while first > 0 and len(pieces[first - 1]) <= budget:
        first -= 1
        budget -= len(pieces[first])
    unread = sum(len(piece) for piece in pieces[:first])
    pieces = pieces[first:]
    if 1 < len(pieces) and len(text) <= _MAX_PIECE_CHARS:
        pieces.append(" ".join(text.split()))
    return pieces, unread


def _windows(piece: str) -> list[str]:
    """``piece`` cut at spaces into parts of at most ``_MAX_PIECE_CHARS`` (a word longer than that is cut)."""
    windows: list[str] = []
    while len(piece) > _MAX_PIECE_CHARS:
        cut = piece.rfind(" ", 0, _MAX_PIECE_CHARS + 1)
        cut = cut if cut > 0 else _MAX_PIECE_CHARS
        windows.append(piece[:cut])
        piece = piece[cut:].lstrip()
    if piece:
        windows.append(piece)
    return windows


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (which the tokenizer refuses) replaced."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
