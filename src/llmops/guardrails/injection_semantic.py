"""The injection guardrail's semantic layer: how close a prompt's sentences come to attack intents.

Patterns catch wordings; an attack reworded beyond them still *means* one of a few things (void the
instructions, claim the rules changed, invent a persona without rules, pull out the hidden prompt).
This layer embeds the prompt's pieces with the packaged all-MiniLM-L6-v2 (``llmops[local]``, the
model of the semantic cache and the ``topics`` guardrail) and weighs each against the attack intents
and the benign contrasts of :mod:`llmops.guardrails.injection_exemplars`.

Each piece gets a probability from a logistic regression fitted, when the model loads, to those
two lists (see :func:`_fit_probe`); the text's score is its most attack-like piece's. Pieces are
sentences (very short ones joined to the next), each pair of neighbouring sentences (an
intent often spans two: "That demo is finished. Now do X."), and the whole text when it is short.
They are read from every reading the heuristics make (normalised, de-leeted, de-spaced, decoded).
Only the last ``_MAX_CHARS`` characters of a reading are read: the newest message is at the end.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from llmops.guardrails.injection_exemplars import ATTACK_INTENTS, BENIGN_CONTRASTS
from llmops.guardrails.minilm import load_minilm, require_minilm

_WHO = "the injection guardrail's semantic layer"
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;:。！？])\s+|\s*\n\s*|(?<=[\]>\"”])\s+(?=[\[<\"“])")
_MIN_PIECE_CHARS = 24  # "Hi there." alone says little: joined to the next sentence
_MAX_PIECE_CHARS = 400  # a longer sentence is read in overlapping windows of this size
_WHOLE_TEXT_CHARS = 300  # a text this short is also read whole
_MAX_CHARS = 3_000  # read per reading, from the end
_MAX_READINGS = 4
_PROBE_STEPS = 2_000
_PROBE_RATE = 2.0
_PROBE_L2 = 0.01


@dataclass(frozen=True, slots=True)
class SemanticScore:
    """How much the most attack-like piece of a text reads as an attack intent (0..1), and which one."""

    probability: float
    intent: str  # the attack intent closest to that piece ("" for an empty text)


NOTHING = SemanticScore(0.0, "")


@dataclass(frozen=True, slots=True)
class _Probe:
    """A logistic regression over MiniLM vectors, fitted to the exemplars, and the attack intents' vectors."""

    weights: Any  # float32 array, 384
    bias: float
    intents: Any  # float32 array, one row per attack intent


class SemanticMatcher:
    """MiniLM and the fitted probe, built on first use (once, under a lock) and shared by threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None
        self._probe: _Probe | None = None

    def score(self, readings: list[str]) -> SemanticScore:
        """The probe's highest attack probability over the pieces of ``readings``, and its closest intent."""
        pieces = _pieces(readings)
        if not pieces:
            return NOTHING
        import numpy as np

        model, probe = self._loaded()
        vectors = np.asarray(model.embed(pieces).vectors, dtype=np.float32)
        logits = vectors @ probe.weights + probe.bias
        row = int(np.argmax(logits))
        probability = float(1.0 / (1.0 + np.exp(-logits[row])))
        intent = ATTACK_INTENTS[int(np.argmax(probe.intents @ vectors[row]))]
        return SemanticScore(round(probability, 4), intent)

    def _loaded(self) -> tuple[Any, _Probe]:
        if self._probe is None:
            with self._lock:
                if self._probe is None:
                    self._model = load_minilm(_WHO)
                    self._probe = _fit_probe(self._model)
        return self._model, self._probe


def _fit_probe(model: Any) -> _Probe:
    """Logistic regression, attack intents against benign contrasts, by plain gradient descent.

    Why a probe rather than the nearest exemplar: on the bench's development groups, at the same
    false-positive rate on hard negatives, the highest cosine similarity to an intent caught about
    35-50% of reworded attacks and the probe 55-60%; it learns which directions of the embedding
    separate "your rules no longer apply" from "the rules of chess". Deterministic: same exemplars,
    same weights (~0.1 s, once).
    """
    import numpy as np

    vectors = np.asarray(model.embed([*ATTACK_INTENTS, *BENIGN_CONTRASTS]).vectors, dtype=np.float64)
    labels = np.r_[np.ones(len(ATTACK_INTENTS)), np.zeros(len(BENIGN_CONTRASTS))]
    weights, bias = np.zeros(vectors.shape[1]), 0.0
    for _ in range(_PROBE_STEPS):
        error = 1.0 / (1.0 + np.exp(-(vectors @ weights + bias))) - labels
        weights -= _PROBE_RATE * (vectors.T @ error + _PROBE_L2 * weights) / len(labels)
        bias -= _PROBE_RATE * float(error.mean())
    intents = np.asarray(vectors[: len(ATTACK_INTENTS)], dtype=np.float32)
    return _Probe(weights.astype(np.float32), bias, intents)


def require_semantic() -> None:
    """GuardrailUnavailable at configuration time when the ``local`` extra or its model is missing."""
    require_minilm(_WHO, param="semantic")


def _pieces(readings: list[str]) -> list[str]:
    """Sentences, neighbouring pairs and short whole texts of each reading, each once."""
    pieces: dict[str, None] = {}
    for reading in readings[:_MAX_READINGS]:
        reading = _encodable(reading[-_MAX_CHARS:]).strip()
        if not reading:
            continue
        sentences = _sentences(reading)
        for sentence in sentences:
            pieces.update(dict.fromkeys(_windows(sentence)))
        for first, second in zip(sentences, sentences[1:], strict=False):
            if len(first) + len(second) < _MAX_PIECE_CHARS:
                pieces[f"{first} {second}"] = None
        if len(sentences) > 2 and len(reading) <= _WHOLE_TEXT_CHARS:
            pieces[" ".join(reading.split())] = None
    return list(pieces)


def _sentences(text: str) -> list[str]:
    sentences: list[str] = []
    pending = ""
    for sentence in _SENTENCE_BREAK.split(text):
        pending = f"{pending} {sentence}".strip() if pending else sentence.strip()
        if len(pending) >= _MIN_PIECE_CHARS:
            sentences.append(pending)
            pending = ""
    if pending:
        sentences.append(pending)
    return sentences


def _windows(sentence: str) -> list[str]:
    """``sentence``, or overlapping windows of it cut at spaces when it is longer than the limit."""
    if len(sentence) <= _MAX_PIECE_CHARS:
        return [sentence]
    windows: list[str] = []
    start = 0
    while start < len(sentence):
        end = min(len(sentence), start + _MAX_PIECE_CHARS)
        cut = sentence.rfind(" ", start + 1, end) if end < len(sentence) else end
        end = cut if cut > start else end
        windows.append(sentence[start:end].strip())
        if end >= len(sentence):
            break
        restart = sentence.find(" ", start + (end - start) // 2)
        start = restart + 1 if start < restart < end else end
    return [window for window in windows if window]


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (which the tokenizer refuses) replaced."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
