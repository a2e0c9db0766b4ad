"""LLM-as-judge: the prompt of each rubric, reading varied judge answers, normalisation, custom rubric
files, prompt-registry rubrics (on SQLite and Postgres) and one call over HTTP to a fake upstream."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from fake_upstream import FakeUpstream
from llmops.evals.calls import ChatRequest, ChatResult
from llmops.evals.rubrics import RubricError, RubricNotFound, builtin_names, builtin_rubric
from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.judges import (
    UNPARSABLE,
    JudgeScorer,
    normalise,
    parse_judge_answer,
    rubric_messages,
)
from llmops.evals.scorers.registry import ScorerResources
from llmops.prompts.repository import PromptRepository
from llmops.prompts.services import PromptService
from llmops.prompts.spec import MessageTemplate, PromptContent, VariableSpec

ITEM = ScoreInput(
    output="Paris is the capital of France.",
    expected="Paris",
    input="What is the capital of France?",
)


class FakeJudge:
    """A model caller answering with canned texts (or errors), keeping every request."""

    def __init__(self, *answers: str | ChatResult) -> None:
        self.answers = list(answers)
        self.requests: list[ChatRequest] = []

    async def __call__(self, request: ChatRequest) -> ChatResult:
        self.requests.append(request)
        answer = self.answers.pop(0)
        return answer if isinstance(answer, ChatResult) else ChatResult(text=answer, trace_id="t1")


def _resources(caller: Callable[[ChatRequest], Awaitable[ChatResult]], **kwargs: Any) -> ScorerResources:
    return ScorerResources(caller=caller, judge_model=kwargs.pop("judge_model", "judge-model"), **kwargs)


def _score(
    metric_arg: str, item: ScoreInput, *answers: str | ChatResult, **kwargs: Any
) -> tuple[Score, FakeJudge]:
    judge = FakeJudge(*answers)
    scorer = JudgeScorer(metric_arg, _resources(judge, **kwargs))
    return asyncio.run(scorer.score(item)), judge


def _user_text(judge: FakeJudge) -> str:
    return str(judge.requests[0].messages[-1]["content"])


# -- prompts ------------------------------------------------------------------------------------------


def test_the_builtin_rubrics() -> None:
    assert builtin_names() == ["coherence", "factual_consistency", "fluency", "relevance"]
    for name in builtin_names():
        rubric = builtin_rubric(name)
        assert (rubric.scale_min, rubric.scale_max) == (1, 5)
        assert "output" in rubric.fields
        for level in range(1, 6):
            assert f"{level}: " in rubric.instructions


@pytest.mark.parametrize(
    ("name", "shown", "hidden"),
    [
        ("fluency", ["[Answer to evaluate]"], ["[Input]", "[Reference answer]"]),
        ("coherence", ["[Input]", "[Answer to evaluate]"], ["[Reference answer]"]),
        ("relevance", ["[Input]", "[Answer to evaluate]"], ["[Reference answer]"]),
        ("factual_consistency", ["[Answer to evaluate]", "[Reference answer]"], ["[Input]", "[Context]"]),
    ],
)
def test_each_rubric_shows_its_fields_the_scale_and_the_answer_shape(
    name: str, shown: list[str], hidden: list[str]
) -> None:
    messages, _ = rubric_messages(builtin_rubric(name), ITEM)
    assert [message["role"] for message in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert builtin_rubric(name).instructions in user
    assert "integer score from 1 (worst) to 5 (best)" in user
    assert '{"reasoning": "<one or two sentences>", "score": <integer from 1 to 5>}' in user
    assert ITEM.output in user
    for label in shown:
        assert label in user
    for label in hidden:
        assert label not in user


def test_factual_consistency_checks_against_the_context_when_the_row_has_one() -> None:
    with_context = ScoreInput(
        output="It opened in 1889.", expected="1887", context="The tower opened in 1889."
    )
    score, judge = _score("factual_consistency", with_context, '{"reasoning": "supported", "score": 5}')
    user = _user_text(judge)
    assert "[Context]\nThe tower opened in 1889." in user
    assert "1887" not in user
    assert score.raw["shown"] == ["output", "context"]
    score, judge = _score("factual_consistency", ITEM, '{"reasoning": "ok", "score": 4}')
    assert "[Reference answer]\nParis" in _user_text(judge)
    assert score.raw["shown"] == ["output", "expected"]


def test_an_item_without_what_the_rubric_shows_is_not_judged_and_no_call_is_made() -> None:
    bare = ScoreInput(output="an answer")
    score, judge = _score("factual_consistency", bare)
    assert score.value is None
    assert score.reasoning == "not judged: the item has no reference answer (expected) or context"
    assert not judge.requests
    score, judge = _score("relevance", bare)
    assert (score.value, score.reasoning) == (None, "not judged: the item has no input")
    score, judge = _score("fluency", ScoreInput(output=None))
    assert (score.value, score.reasoning) == (None, "not judged: there is no output")
    assert not judge.requests


def test_chat_messages_and_variables_stand_for_the_input() -> None:
    chat = ScoreInput(
        output="hi",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
    )
    messages, _ = rubric_messages(builtin_rubric("relevance"), chat)
    assert "[Input]\nsystem: Be brief.\nuser: Hello\n" in messages[1]["content"]
    prompt_row = ScoreInput(output="hi", variables={"question": "Hello?"})
    messages, _ = rubric_messages(builtin_rubric("relevance"), prompt_row)
    assert '[Input]\n{"question": "Hello?"}' in messages[1]["content"]


def test_the_judge_is_called_with_the_judge_model_at_temperature_0() -> None:
    score, judge = _score("relevance", ITEM, '{"reasoning": "answers the question", "score": 5}')
    (request,) = judge.requests
    assert request.model == "judge-model"
    assert request.params["temperature"] == 0
    assert score == Score(
        1.0,
        "answers the question",
        {
            "rubric": "relevance",
            "judge_model": "judge-model",
            "scale": [1, 5],
            "shown": ["input", "output"],
            "answer": '{"reasoning": "answers the question", "score": 5}',
            "trace_id": "t1",
            "score": 5.0,
        },
    )


# -- reading answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "score", "reasoning"),
    [
        ('{"reasoning": "on topic", "score": 4}', 4, "on topic"),
        ('{"score": "4", "explanation": "fine"}', 4, "fine"),
        ('```json\n{"reasoning": "fenced", "score": 2}\n```', 2, "fenced"),
        (
            'Here is my verdict:\n```\n{"reasoning": "plain fence", "score": 3}\n```\nThanks.',
            3,
            "plain fence",
        ),
        ('Sure! {"reasoning": "in prose", "score": 5} Hope this helps.', 5, "in prose"),
        ('I think {not json} and then {"reasoning": "second object", "score": 1}', 1, "second object"),
        ('{"reasoning": "a "quoted" word breaks the JSON", "score": 3,}', 3, None),
        ("The answer is relevant but incomplete.\nScore: 4/5", 4, "The answer is relevant but incomplete."),
        ("**Score:** 3\nIt drifts.", 3, "It drifts."),
        ("Rating = 2 out of 5", 2, None),
        ("Score: 2\nOn reflection...\nFinal score: 3", 3, None),
        ('{"reasoning": "half", "score": 3.5}', 3.5, "half"),
    ],
)
def test_scores_are_found_in_varied_answers(answer: str, score: float, reasoning: str | None) -> None:
    verdict = parse_judge_answer(answer, 1, 5)
    assert verdict.score == score
    assert verdict.problem is None
    if reasoning is not None:
        assert verdict.reasoning == reasoning


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ('{"reasoning": "too good", "score": 7}', "judge score 7 is outside the scale 1..5"),
        ('{"reasoning": "zero", "score": 0}', "judge score 0 is outside the scale 1..5"),
        ("Score: 8/10", "judge scored on another scale (8/10, expected 1..5)"),
        ("I cannot evaluate this.", "no score found"),
        ('{"reasoning": "yes", "score": true}', "no score found"),
        ("", "empty answer"),
        (None, "empty answer"),
    ],
)
def test_answers_off_the_scale_or_without_a_score_give_none(answer: str | None, problem: str) -> None:
    verdict = parse_judge_answer(answer, 1, 5)
    assert verdict.score is None
    assert verdict.problem == problem


def test_normalisation_maps_the_scale_onto_0_to_1() -> None:
    assert [normalise(score, 1, 5) for score in (1, 2, 3, 4, 5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert normalise(7, 0, 10) == pytest.approx(0.7)


def test_garbage_and_failed_calls_never_raise() -> None:
    score, _ = _score("fluency", ITEM, "lorem ipsum")
    assert (score.value, score.reasoning) == (None, UNPARSABLE)
    assert score.raw["answer"] == "lorem ipsum"
    assert score.raw["problem"] == "no score found"
    failed = ChatResult(text=None, error="upstream 500 after 3 attempts")
    score, _ = _score("fluency", ITEM, failed)
    assert (score.value, score.reasoning) == (None, "judge call failed: upstream 500 after 3 attempts")
    assert score.raw["error"] == "upstream 500 after 3 attempts"
    score, _ = _score("fluency", ITEM, '{"reasoning": "great", "score": 9}')
    assert (score.value, score.reasoning, score.raw["score"]) == (None, "great", None)
    assert score.raw["problem"] == "judge score 9 is outside the scale 1..5"


# -- custom rubrics -----------------------------------------------------------------------------------

POLITENESS = """\
name: politeness
title: Politeness
scale: {min: 0, max: 10}
fields: [input, output]
instructions: |
  Judge how polite the answer is. 0: rude. 10: courteous throughout.
"""


def test_a_rubric_file(tmp_path: Path) -> None:
    path = tmp_path / "politeness.yaml"
    path.write_text(POLITENESS)
    score, judge = _score(str(path), ITEM, "Courteous.\nScore: 8/10")
    assert score.value == pytest.approx(0.8)
    assert score.raw["rubric"] == "politeness"
    user = _user_text(judge)
    assert "Criterion: Politeness\n\nJudge how polite the answer is." in user
    assert "integer score from 0 (worst) to 10 (best)" in user
    assert "[Input]\nWhat is the capital of France?" in user


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (POLITENESS.replace("[input, output]", "[input]"), "fields must include output"),
        (POLITENESS.replace("{min: 0, max: 10}", "{min: 5, max: 5}"), "scale: min (5) must be below max (5)"),
        (
            POLITENESS.replace("{min: 0, max: 10}", "{min: 1, max: 2.5}"),
            "scale.max: Input should be a valid integer",
        ),
        (POLITENESS.replace("[input, output]", "[output, answer]"), "fields.1: Input should be"),
        (POLITENESS + "colour: blue\n", "colour: Extra inputs are not permitted"),
        ("name: [unclosed", "cannot read the rubric"),
        ("just text", "a rubric is a mapping"),
    ],
)
def test_malformed_rubric_files_are_user_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RubricError, match=re.escape(message)):
        JudgeScorer(str(path), _resources(FakeJudge()))


def test_unknown_rubrics_are_not_found(tmp_path: Path) -> None:
    with pytest.raises(RubricNotFound, match="no built-in rubric 'helpfulness'"):
        JudgeScorer("helpfulness", _resources(FakeJudge()))
    with pytest.raises(RubricNotFound, match="does not exist"):
        JudgeScorer(str(tmp_path / "missing.yaml"), _resources(FakeJudge()))


# -- prompt-registry rubrics --------------------------------------------------------------------------


def _judge_prompt(service: PromptService, name: str, text: str, **variables: VariableSpec) -> None:
    content = PromptContent(
        kind="chat",
        messages=(MessageTemplate(role="user", content=text),),
        variables={"output": VariableSpec(required=True), **variables},
        parameters={"max_tokens": 64},
    )
    service.create_version(name, content, labels=["staging"])


def test_a_prompt_of_the_registry_as_a_rubric(db: Engine) -> None:
    service = PromptService(PromptRepository(db))
    _judge_prompt(
        service,
        "tone-judge",
        "Rate the tone of {{ output }} for {{ input }} from {{ score_min }} to {{ score_max }}.",
        input=VariableSpec(),
        score_min=VariableSpec(type="integer", default=0),
        score_max=VariableSpec(type="integer", default=4),
    )
    score, judge = _score("prompt:tone-judge@staging", ITEM, '{"reasoning": "warm", "score": 3}', engine=db)
    (request,) = judge.requests
    assert request.messages == [
        {
            "role": "user",
            "content": "Rate the tone of Paris is the capital of France. for What is the capital of France? "
            "from 0 to 4.",
        }
    ]
    assert request.params == {"temperature": 0, "max_tokens": 64}
    assert score.value == pytest.approx(0.75)
    assert score.raw["rubric"] == "tone-judge#1"
    assert score.raw["scale"] == [0, 4]
    assert score.raw["shown"] == ["input", "output"]


def test_a_prompt_rubric_that_needs_what_the_item_lacks_is_not_judged(db: Engine) -> None:
    service = PromptService(PromptRepository(db))
    _judge_prompt(
        service, "ref-judge", "{{ output }} vs {{ expected }}", expected=VariableSpec(required=True)
    )
    score, judge = _score("prompt:ref-judge", ScoreInput(output="x"), engine=db)
    assert score.value is None
    assert "missing required variable 'expected'" in str(score.reasoning)
    assert not judge.requests


def test_prompt_rubric_mistakes_are_user_errors(db: Engine) -> None:
    service = PromptService(PromptRepository(db))
    with pytest.raises(RubricNotFound, match="no-such-judge"):
        JudgeScorer("prompt:no-such-judge", _resources(FakeJudge(), engine=db))
    _judge_prompt(service, "odd-scale", "{{ output }}", score_max=VariableSpec(type="string", default="five"))
    with pytest.raises(RubricError, match="score_max needs an integer default"):
        JudgeScorer("prompt:odd-scale", _resources(FakeJudge(), engine=db))
    with pytest.raises(RubricNotFound, match="has no label 'nope'"):
        JudgeScorer("prompt:odd-scale@nope", _resources(FakeJudge(), engine=db))


# -- over HTTP ----------------------------------------------------------------------------------------


def test_a_judge_call_over_http_to_an_openai_compatible_upstream() -> None:
    """The fake upstream answers "fake answer to: <the judge prompt>": the JSON in the judged output
    comes back in that answer, so the score read is the one planted there."""
    with FakeUpstream() as upstream:

        async def caller(request: ChatRequest) -> ChatResult:
            async with httpx.AsyncClient(base_url=upstream.base_url) as client:
                body = {"model": request.model, "messages": request.messages, **request.params}
                response = await client.post("/chat/completions", json=body)
            return ChatResult(text=response.json()["choices"][0]["message"]["content"])

        item = ScoreInput(output='{"reasoning": "planted", "score": 2}', input="Say hi")
        score = asyncio.run(JudgeScorer("relevance", _resources(caller)).score(item))
        sent = upstream.requests[0]
    assert sent["model"] == "judge-model"
    assert sent["temperature"] == 0
    assert sent["messages"][0]["role"] == "system"
    assert (score.value, score.reasoning) == (0.25, "planted")


# -- the guide ----------------------------------------------------------------------------------------


def test_the_judges_guide_shows_the_prompts_as_they_are_sent() -> None:
    import yaml

    from llmops.evals.rubrics import parse_rubric
    from llmops.prompts.services import parse_prompt_file
    from llmops.prompts.templates import check_content

    guide = (Path(__file__).parents[2] / "docs" / "judges.md").read_text()
    example = ScoreInput(output="Paris is the capital of France.", input="What is the capital of France?")
    system, user = rubric_messages(builtin_rubric("relevance"), example)[0]
    assert f"```text\n{system['content']}\n```" in guide
    assert f"```text\n{user['content']}\n```" in guide
    for name in builtin_names():
        assert f"\n{builtin_rubric(name).instructions}\n" in guide
    blocks = [yaml.safe_load(block.split("```", 1)[0]) for block in guide.split("```yaml\n")[1:]]
    rubric = parse_rubric(next(block for block in blocks if "instructions" in block), "judges.md")
    assert (rubric.name, rubric.scale_min, rubric.scale_max) == ("politeness", 0, 10)
    prompt = parse_prompt_file(next(block for block in blocks if "messages" in block), "judges.md")
    check_content(prompt.content())
    assert set(prompt.variables) == {"input", "output", "score_min", "score_max"}
