"""LLM-as-judge: ``judge:RUBRIC`` asks a model to grade each output on a rubric's integer scale.

``RUBRIC`` is a built-in rubric (``fluency``, ``coherence``, ``relevance``, ``factual_consistency``), a
rubric file (``judge:my_rubric.yaml``, see :mod:`llmops.evals.rubrics`) or a prompt of the registry
(``judge:prompt:NAME``, ``NAME@LABEL`` or ``NAME#VERSION``) rendered with the variables ``input``,
``output``, ``expected`` and ``context`` it declares. The judge answers ``{"reasoning": "...", "score":
N}``; the metric's value is the score normalised to 0..1 by the scale, and ``Score.raw`` keeps the raw
score, the scale, what the judge was shown and its whole answer.

A judge never stops a run: a failed call, an answer with no score in it or a score off the scale gives
the item a None value (left out of the aggregates) with the reason as its reasoning.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.evals.calls import ChatRequest, ChatResult
from llmops.evals.rubrics import (
    Rubric,
    RubricError,
    RubricNotFound,
    builtin_rubric,
    read_rubric_file,
)
from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.registry import RESOURCE_HINTS, MissingResource, Scorer

if TYPE_CHECKING:
    from llmops.evals.calls import ModelCaller
    from llmops.evals.scorers.registry import ScorerResources
    from llmops.prompts.services import PromptVersion

UNPARSABLE = "unparsable judge answer"
JUDGE_PARAMS: dict[str, Any] = {"temperature": 0, "max_tokens": 512}
PROMPT_PREFIX = "prompt:"
_SCAN_LIMIT = 20_000  # characters of an answer searched for JSON (a judge's reply is short)
_LABELS = {
    "input": "Input",
    "output": "Answer to evaluate",
    "expected": "Reference answer",
    "context": "Context",
}
_SYSTEM = (
    "You are a strict, impartial evaluator. You grade one answer on one criterion, following the "
    "rubric exactly. You reply with a single JSON object and nothing else."
)


class _NotJudged(Exception):
    """This item cannot be judged (nothing to judge, or nothing to judge it against)."""


# --- what the judge sees ----------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def item_input(item: ScoreInput) -> str | None:
    """The row's input as text: ``input``, else its chat messages, else its prompt variables."""
    if item.input is not None:
        return item.input
    if item.messages:
        return "\n".join(
            f"{message.get('role')}: {_text(message.get('content'))}" for message in item.messages
        )
    return _text(item.variables) if item.variables else None


def item_fields(item: ScoreInput) -> dict[str, str | None]:
    """The texts a rubric may show, by field name (``reference`` is resolved by :func:`reference_of`)."""
    return {
        "input": item_input(item),
        "output": item.output,
        "expected": _text(item.expected),
        "context": _text(item.context),
    }


def reference_of(fields: dict[str, str | None]) -> str | None:
    """Which field stands for ``reference``: the context when the row has one, else the expected answer."""
    if fields.get("context"):
        return "context"
    return "expected" if fields.get("expected") else None


def rubric_messages(rubric: Rubric, item: ScoreInput) -> tuple[list[dict[str, str]], list[str]]:
    """The judge's chat messages for one item, and the fields it was shown (``reference`` resolved)."""
    values = item_fields(item)
    shown: list[str] = []
    sections: list[str] = []
    for name in rubric.fields:
        source = reference_of(values) if name == "reference" else name
        if source is None or values.get(source) is None:
            missing = "reference answer (expected) or context" if name == "reference" else name
            raise _NotJudged(f"not judged: the item has no {missing}")
        shown.append(source)
        sections.append(f"[{_LABELS[source]}]\n{values[source]}\n[End of {_LABELS[source].lower()}]")
    low, high = rubric.scale_min, rubric.scale_max
    user = "\n\n".join(
        [
            f"Criterion: {rubric.title}",
            rubric.instructions,
            f"Use an integer score from {low} (worst) to {high} (best).",
            *sections,
            "Reply with JSON only, exactly of this shape:\n"
            f'{{"reasoning": "<one or two sentences>", "score": <integer from {low} to {high}>}}',
        ]
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}], shown


# --- reading the judge's answer ---------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What was read from an answer: the raw score on the rubric's scale (None: refused or absent)."""

    score: float | None
    reasoning: str | None
    problem: str | None = None  # why there is no score


_FENCE = re.compile(r"```[A-Za-z]*\s*\n?(.*?)```", re.S)
_NUMBER = r"(-?\d+(?:\.\d+)?)"
_OUT_OF = r"(?:\s*(?:/|out\s+of)\s*(\d+))?"
_SCORE_KEY = re.compile(r'["\']score["\']\s*:\s*["\']?' + _NUMBER + _OUT_OF, re.I)
_REASONING_KEY = re.compile(r'"reasoning"\s*:\s*"((?:[^"\\]|\\.)*)"', re.I | re.S)
_SCORE_LINE = re.compile(
    r"^[\s*#>_-]*(?:final\s+|overall\s+)?(?:score|rating)\s*\**\s*[:=]\s*\**\s*" + _NUMBER + _OUT_OF,
    re.I | re.M,
)
_SCORE_TEXT = re.compile(r"^\s*" + _NUMBER + _OUT_OF + r"\s*$", re.I)
_REASONING_NAMES = ("reasoning", "reason", "explanation", "rationale")


def _json_objects(text: str) -> list[dict[str, Any]]:
    """JSON objects in ``text``: fenced blocks first, then any ``{...}`` that decodes, in order."""
    found: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    for source in [*_FENCE.findall(text), text]:
        start = source.find("{")
        while start != -1:
            try:
                value, end = decoder.raw_decode(source, start)
            except json.JSONDecodeError:
                start = source.find("{", start + 1)
                continue
            if isinstance(value, dict):
                found.append(value)
            start = source.find("{", end)
    return found


def _score_field(data: dict[str, Any]) -> Any:
    for key, value in data.items():
        if isinstance(key, str) and key.lower() == "score":
            return value
    return None


def _reasoning_field(data: dict[str, Any]) -> str | None:
    lowered = {key.lower(): value for key, value in data.items() if isinstance(key, str)}
    for name in _REASONING_NAMES:
        if isinstance(lowered.get(name), str):
            return str(lowered[name]).strip()
    return None


def _number(value: Any) -> tuple[float, int | None] | None:
    """A score value as (number, the ``/M`` it was given out of), or None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value), None
    if isinstance(value, str):
        match = _SCORE_TEXT.match(value)
        if match:
            return float(match[1]), int(match[2]) if match[2] else None
    return None


def _on_scale(found: tuple[float, int | None], low: int, high: int) -> tuple[float | None, str | None]:
    number, out_of = found
    if out_of is not None and out_of != high:
        return None, f"judge scored on another scale ({number:g}/{out_of}, expected {low}..{high})"
    if not low <= number <= high:
        return None, f"judge score {number:g} is outside the scale {low}..{high}"
    return number, None


def parse_judge_answer(text: str | None, low: int, high: int) -> Verdict:
    """Read a judge's answer: a JSON object anywhere in it (fenced or among prose), else a broken
    object's ``"score": N``, else a ``Score: N`` (``N/M``, ``N out of M``) line, the last one."""
    if not text or not text.strip():
        return Verdict(None, UNPARSABLE, "empty answer")
    scanned = text[:_SCAN_LIMIT]
    for data in _json_objects(scanned):
        found = _number(_score_field(data))
        if found is not None:
            score, problem = _on_scale(found, low, high)
            return Verdict(score, _reasoning_field(data) or problem, problem)
    key = _SCORE_KEY.search(scanned)
    if key is not None:
        reasoning = _REASONING_KEY.search(scanned)
        found_key = (float(key[1]), int(key[2]) if key[2] else None)
        score, problem = _on_scale(found_key, low, high)
        return Verdict(score, (reasoning[1].strip() if reasoning else None) or problem, problem)
    lines = list(_SCORE_LINE.finditer(scanned))
    if lines:
        last = lines[-1]
        score, problem = _on_scale((float(last[1]), int(last[2]) if last[2] else None), low, high)
        prose = (scanned[: last.start()] + scanned[last.end() :]).strip()
        return Verdict(score, prose or problem, problem)
    return Verdict(None, UNPARSABLE, "no score found")


def normalise(score: float, low: int, high: int) -> float:
    """A score on ``low..high`` as 0..1."""
    return (score - low) / (high - low)


# --- the scorer -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    messages: list[dict[str, str]]
    shown: list[str]
    params: dict[str, Any] = field(default_factory=dict)


class JudgeScorer(Scorer):
    """``judge:RUBRIC``: one judge call per item, through the evaluation's model caller."""

    higher_is_better = True
    requires_output = True
    needs = frozenset({"model_caller"})
    arg_use = "required"

    def __init__(self, arg: str | None = None, resources: ScorerResources | None = None) -> None:
        self.name = "judge" if arg is None else f"judge:{arg}"
        super().__init__(arg, resources)
        arg = str(arg)
        if self.resources.caller is None:
            raise MissingResource(f"metric {self.name!r} needs {RESOURCE_HINTS['model_caller']}")
        self._caller: ModelCaller = self.resources.caller
        self._rubric: Rubric | None = None
        self._prompt: PromptVersion | None = None
        fallback_model = None
        if arg.startswith(PROMPT_PREFIX):
            self._prompt = _registry_prompt(arg[len(PROMPT_PREFIX) :], self.resources)
            self.scale = _prompt_scale(self._prompt)
            self.rubric_name = f"{self._prompt.name}#{self._prompt.number}"
            fallback_model = self._prompt.content.model
        else:
            self._rubric = _file_or_builtin(arg)
            self.scale = (self._rubric.scale_min, self._rubric.scale_max)
            self.rubric_name = self._rubric.name
        self.model = self.resources.judge_model or fallback_model or _default_model(self.resources)

    def _request(self, item: ScoreInput) -> _Request:
        if self._rubric is not None:
            messages, shown = rubric_messages(self._rubric, item)
            return _Request(messages, shown, dict(JUDGE_PARAMS))
        assert self._prompt is not None
        return _prompt_request(self._prompt, item)

    async def score(self, item: ScoreInput) -> Score:
        if item.output is None:
            return Score(None, "not judged: there is no output", {"rubric": self.rubric_name})
        try:
            request = self._request(item)
        except _NotJudged as exc:
            return Score(None, str(exc), {"rubric": self.rubric_name})
        result = await self._caller(ChatRequest(self.model, request.messages, request.params))
        return self._scored(result, request.shown)

    def _scored(self, result: ChatResult, shown: list[str]) -> Score:
        low, high = self.scale
        raw: dict[str, Any] = {
            "rubric": self.rubric_name,
            "judge_model": self.model,
            "scale": [low, high],
            "shown": shown,
            "answer": result.text,
            "trace_id": result.trace_id,
        }
        if result.error is not None:
            raw["error"] = result.error
            return Score(None, f"judge call failed: {result.error}", raw)
        verdict = parse_judge_answer(result.text, low, high)
        raw["score"] = verdict.score
        if verdict.problem is not None:
            raw["problem"] = verdict.problem
        value = None if verdict.score is None else normalise(verdict.score, low, high)
        return Score(value, verdict.reasoning, raw)


def _file_or_builtin(arg: str) -> Rubric:
    if arg.endswith((".yaml", ".yml")) or "/" in arg:
        return read_rubric_file(Path(arg).expanduser())
    return builtin_rubric(arg)


def _default_model(resources: ScorerResources) -> str:
    """The server's default model: the first configured one (the embedded model when none is)."""
    from llmops.gateway.catalog import configured_models

    if resources.settings is None:
        raise MissingResource("a judge needs a model: give --judge-model")
    return configured_models(resources.settings)[0].name


# --- prompts of the registry as rubrics -------------------------------------------------------------


def _registry_prompt(reference: str, resources: ScorerResources) -> PromptVersion:
    """The prompt version a ``judge:prompt:REF`` rubric uses, resolved once for the whole run."""
    from llmops.prompts.repository import PromptRepository
    from llmops.prompts.services import InvalidPrompt, PromptNotFound, PromptService

    if resources.engine is None:
        raise MissingResource(f"a prompt rubric needs {RESOURCE_HINTS['engine']} (the prompt registry)")
    try:
        return PromptService(PromptRepository(resources.engine)).get(reference)
    except PromptNotFound as exc:
        raise RubricNotFound(f"judge rubric prompt: {exc}", param="metric") from None
    except InvalidPrompt as exc:
        raise RubricError(f"judge rubric prompt: {exc}", param="metric") from None


def _prompt_scale(prompt: PromptVersion) -> tuple[int, int]:
    """The scale a prompt rubric declares through its ``score_min``/``score_max`` variables' defaults
    (1..5 when it declares neither)."""
    declared = prompt.content.variables
    bounds = []
    for name, fallback in (("score_min", 1), ("score_max", 5)):
        spec = declared.get(name)
        value = fallback if spec is None else spec.default
        if isinstance(value, bool) or not isinstance(value, int):
            raise RubricError(
                f"prompt {prompt.name!r}: variable {name} needs an integer default (the judge's scale)",
                param="metric",
            )
        bounds.append(value)
    if bounds[0] >= bounds[1]:
        raise RubricError(f"prompt {prompt.name!r}: score_min must be below score_max", param="metric")
    return bounds[0], bounds[1]


def _prompt_request(prompt: PromptVersion, item: ScoreInput) -> _Request:
    """The registry prompt rendered with the item's fields that it declares."""
    from llmops.prompts.templates import RenderError, render

    values = item_fields(item)
    declared = prompt.content.variables
    variables = {name: value for name, value in values.items() if name in declared and value is not None}
    try:
        rendered = render(prompt.content, variables)
    except RenderError as exc:
        raise _NotJudged(f"not judged: the rubric prompt cannot be rendered: {exc}") from None
    params = {**JUDGE_PARAMS, **prompt.content.parameters}
    return _Request(rendered.as_messages(), sorted(variables), params)
