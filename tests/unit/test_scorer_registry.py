"""The scorer registry: @scorer functions get only what they declare, NAME:ARG, user modules, errors."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

from llmops.errors import UserError
from llmops.evals.scorers.base import Score, ScoreInput
from llmops.evals.scorers.registry import (
    ARG_NAMES,
    BUILTIN_SCORERS,
    BadScorerArg,
    BadScorerDeclaration,
    FunctionScorer,
    MissingExtra,
    MissingResource,
    Scorer,
    ScorerError,
    ScorerRegistry,
    ScorerResources,
    UnknownScorer,
    parse_spec,
    scorer,
)

ITEM = ScoreInput(
    output="The answer is 42.",
    expected="42",
    input="What is six times seven?",
    variables={"topic": "maths"},
    metadata={"source": "unit"},
    latency_ms=12.5,
    prompt_tokens=7,
    completion_tokens=5,
    cost=0.001,
)


def registry() -> ScorerRegistry:
    return ScorerRegistry(load_plugins=False)


async def test_a_function_receives_only_the_arguments_it_declares() -> None:
    seen: list[dict[str, Any]] = []

    @scorer
    def check(output: str, expected: str, metadata: dict[str, Any]) -> bool:
        seen.append({"output": output, "expected": expected, "metadata": metadata})
        return expected in output

    found = FunctionScorer(check)
    assert found.name == "check"
    assert await found.score(ITEM) == Score(1.0)
    assert seen == [{"output": "The answer is 42.", "expected": "42", "metadata": {"source": "unit"}}]


async def test_keyword_catch_all_receives_every_argument() -> None:
    received: dict[str, Any] = {}

    @scorer("everything")
    def check(**kwargs: Any) -> float:
        received.update(kwargs)
        return 0.5

    assert await FunctionScorer(check, "x").score(ITEM) == Score(0.5)
    assert set(received) == ARG_NAMES
    assert received["arg"] == "x"
    assert received["latency_ms"] == 12.5


async def test_async_scorer_with_its_options_and_arg() -> None:
    @scorer("short_enough", higher_is_better=False, threshold=3.0)
    async def words(output: str, arg: str = "10") -> float:
        return float(len(output.split()) <= int(arg))

    reg = registry()
    reg.register("short_enough", words)
    made = reg.create("short_enough:3", ScorerResources())
    assert (made.name, made.higher_is_better, made.threshold) == ("short_enough:3", False, 3.0)
    assert made.requires_output
    assert await made.score(ITEM) == Score(0.0)
    assert await reg.create("short_enough", ScorerResources()).score(ITEM) == Score(1.0)


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (True, Score(1.0)),
        (False, Score(0.0)),
        (3, Score(3.0)),
        (None, Score(None)),
        (Score(0.25, reasoning="why"), Score(0.25, reasoning="why")),
        (math.nan, Score(None, reasoning="the scorer returned NaN")),
    ],
)
async def test_what_a_function_may_return(returned: object, expected: Score) -> None:
    @scorer("fixed")
    def fixed() -> object:
        return returned

    made = FunctionScorer(fixed)
    assert await made.score(ITEM) == expected
    assert not made.requires_output  # it does not declare `output`


async def test_returning_text_is_an_error_naming_the_metric() -> None:
    @scorer("wordy")
    def wordy(output: str) -> str:
        return "good"

    with pytest.raises(ScorerError, match="scorer 'wordy' returned str"):
        await FunctionScorer(wordy).score(ITEM)


def test_an_unknown_parameter_is_refused_when_the_module_loads() -> None:
    with pytest.raises(BadScorerDeclaration) as caught:

        @scorer
        def sloppy(outptu: str) -> bool:
            return True

    message = str(caught.value)
    assert "sloppy" in message
    assert "'outptu'" in message
    assert "did you mean 'output'?" in message
    assert "expected, input, latency_ms" in message  # the allowed names are listed


def test_positional_variadics_are_refused() -> None:
    with pytest.raises(BadScorerDeclaration, match="'parts' cannot be passed by name"):

        @scorer
        def variadic(*parts: str) -> bool:
            return True


def test_arg_rules_of_functions() -> None:
    @scorer
    def plain(output: str) -> bool:
        return True

    @scorer
    def needs(output: str, arg: str) -> bool:
        return True

    with pytest.raises(BadScorerArg, match=r"'plain' takes no argument \(got plain:x\)"):
        FunctionScorer(plain, "x")
    with pytest.raises(BadScorerArg, match="'needs' needs an argument: needs:ARG"):
        FunctionScorer(needs)


def test_spec_parsing() -> None:
    assert parse_spec("rouge_l") == ("rouge_l", None)
    assert parse_spec(r"regex:^\d+:\d+$") == ("regex", r"^\d+:\d+$")  # the ARG is all after the 1st colon
    assert parse_spec(" contains:refund ") == ("contains", "refund")
    with pytest.raises(BadScorerArg, match="nothing after ':'"):
        parse_spec("contains:")
    with pytest.raises(BadScorerArg, match="no name"):
        parse_spec(":x")


def test_builtins_are_known_by_name_without_entry_points() -> None:
    names = registry().names()
    for name in ("exact_match", "bleu", "rouge_l", "embedding_similarity", "perplexity", "judge", "human"):
        assert name in names
    assert set(BUILTIN_SCORERS) <= set(names)
    made = registry().create("exact_match:ci", ScorerResources())
    assert made.name == "exact_match:ci"
    assert made.threshold == 1.0


def test_unknown_metric_suggests_a_name_and_lists_them() -> None:
    with pytest.raises(UnknownScorer) as caught:
        registry().create("rouge_k", ScorerResources())
    message = str(caught.value)
    assert "unknown metric 'rouge_k' (did you mean 'rouge_l'?)" in message
    assert "exact_match" in message
    assert isinstance(caught.value, UserError)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("json_valid:strict", "'json_valid' takes no argument"),
        ("exact_match:cs", "unknown argument 'cs'; use exact_match:ci"),
        ("length:lines", "use length:chars, length:words"),
        ("regex", "'regex' needs an argument: regex:ARG"),
        ("regex:([a-z]", r"bad pattern '\(\[a-z\]'"),
    ],
)
def test_bad_args_are_refused_at_create_time(spec: str, match: str) -> None:
    with pytest.raises(BadScorerArg, match=match):
        registry().create(spec, ScorerResources())


def test_a_missing_resource_says_what_is_needed() -> None:
    with pytest.raises(MissingResource, match="'embedding_similarity' needs the embedded MiniLM"):
        registry().create("embedding_similarity", ScorerResources())


def test_a_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in [name for name in sys.modules if name.startswith("sacrebleu")] + ["sacrebleu"]:
        monkeypatch.setitem(sys.modules, module, None)  # as if sacrebleu were not installed
    with pytest.raises(
        MissingExtra, match=r"metric 'bleu' needs the eval extra: pip install 'llmops\[eval\]'"
    ):
        registry().create("bleu", ScorerResources())


USER_MODULE = """
from llmops.evals.scorers import registry
from llmops.evals.scorers.base import Score


@registry.scorer
def mentions_topic(output, variables):
    return variables["topic"] in output


@registry.scorer("polite", threshold=0.5)
async def is_polite(output):
    return Score(1.0 if "please" in output.lower() else 0.0, reasoning="looked for please")


class WordCount(registry.Scorer):
    name = "word_count"
    higher_is_better = False

    async def score(self, item):
        return Score(float(len(item.output.split())))
"""


async def test_user_module_by_file_path(tmp_path: Path) -> None:
    path = tmp_path / "my_scorers.py"
    path.write_text(USER_MODULE)
    reg = registry()
    assert sorted(reg.load_module(str(path))) == ["mentions_topic", "polite", "word_count"]
    assert reg.load_module(str(path)) == reg.load_module(str(path))  # loading again changes nothing
    item = ScoreInput(output="Please read the maths notes.", variables={"topic": "maths"})
    assert await reg.create("mentions_topic", ScorerResources()).score(item) == Score(1.0)
    polite = reg.create("polite", ScorerResources())
    assert polite.threshold == 0.5
    assert await polite.score(item) == Score(1.0, reasoning="looked for please")
    counted = reg.create("word_count", ScorerResources())
    assert not counted.higher_is_better
    assert await counted.score(item) == Score(5.0)


async def test_user_module_by_module_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "team_metrics"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "checks.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = registry()
    assert "polite" in reg.load_module("team_metrics.checks")
    assert await reg.create("polite", ScorerResources()).score(ScoreInput(output="no")) == Score(
        0.0, reasoning="looked for please"
    )


IMPORT_SCORER = "from llmops.evals.scorers.registry import scorer\n"


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("x = 1\n", "defines no scorer"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("def broken(:\n", "SyntaxError"),
        (
            f"{IMPORT_SCORER}@scorer('bleu')\ndef mine(output):\n    return 1\n",
            "scorer name 'bleu' is taken",
        ),
        (
            f"{IMPORT_SCORER}@scorer\ndef mine(answer):\n    return 1\n",
            "unknown parameter 'answer'",
        ),
    ],
)
def test_bad_user_modules_give_one_line(tmp_path: Path, source: str, match: str) -> None:
    path = tmp_path / f"bad_{abs(hash(source))}.py"
    path.write_text(source)
    with pytest.raises(BadScorerDeclaration, match=match) as caught:
        registry().load_module(str(path))
    assert "\n" not in str(caught.value)


def test_missing_user_modules() -> None:
    with pytest.raises(BadScorerDeclaration, match="file not found"):
        registry().load_module("no/such/scorers.py")
    with pytest.raises(BadScorerDeclaration, match="cannot be imported"):
        registry().load_module("no_such_package_for_scorers.mod")


async def test_entry_point_plugins_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plugin_scorers.py").write_text(USER_MODULE)
    info = tmp_path / "plugin_scorers-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-scorers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[llmops.scorers]\nshouting = plugin_scorers:is_polite\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = ScorerRegistry()
    assert "shouting" in reg.names()
    made = reg.create("shouting", ScorerResources())
    assert made.name == "shouting"
    assert await made.score(ScoreInput(output="PLEASE")) == Score(1.0, reasoning="looked for please")
    assert "shouting" not in ScorerRegistry(load_plugins=False).names()


def test_targets_that_are_not_scorers_are_refused() -> None:
    reg = ScorerRegistry({"plain": "os.path:join", "missing": "llmops.no_such_module:X"}, load_plugins=False)
    with pytest.raises(BadScorerDeclaration, match="neither a llmops Scorer subclass nor a function"):
        reg.get("plain")
    with pytest.raises(ScorerError, match="cannot be loaded from llmops.no_such_module:X"):
        reg.get("missing")


def test_scorer_base_class_checks_its_arg() -> None:
    class Fixed(Scorer):
        name = "fixed"
        arg_use = "optional"
        arg_choices = ("a", "b")

        async def score(self, item: ScoreInput) -> Score:
            return Score(1.0)

    assert Fixed("a").arg == "a"
    with pytest.raises(BadScorerArg, match="use fixed:a, fixed:b"):
        Fixed("c")


async def test_the_metrics_guide_examples_load_and_score(tmp_path: Path) -> None:
    guide = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    functions, classes = [block.split("```", 1)[0] for block in guide.split("```python\n")[1:3]]
    reg = registry()
    (tmp_path / "guide_functions.py").write_text(functions)
    (tmp_path / "guide_classes.py").write_text(classes)
    assert sorted(reg.load_module(str(tmp_path / "guide_functions.py"))) == [
        "max_words",
        "mentions_product",
        "polite",
    ]
    assert reg.load_module(str(tmp_path / "guide_classes.py")) == ["keyword_coverage"]
    item = ScoreInput(output="Thank you: the Widget Pro ships today.", variables={"product": "widget pro"})
    resources = ScorerResources()
    assert await reg.create("mentions_product", resources).score(item) == Score(1.0)
    assert await reg.create("max_words:3", resources).score(item) == Score(4.0)
    assert await reg.create("max_words", resources).score(item) == Score(0.0)
    assert (await reg.create("polite", resources).score(item)).reasoning == "found ['thank']"
    coverage = reg.create("keyword_coverage:widget, ships, refund", resources)
    assert await coverage.score(item) == Score(pytest.approx(2 / 3))
    with pytest.raises(BadScorerArg):
        reg.create("keyword_coverage", resources)
