"""The drift checks on synthetic samples: planted shifts are drift, samples of one population are not."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from drift_support import REFERENCE_MIX, SHIFTED_MIX, WordHashEmbedder, prompts
from llmops.drift.checks import (
    CHECK_NAMES,
    CheckContext,
    CheckOptions,
    CheckResult,
    LanguageIdentifier,
    overall,
    run_checks,
)
from llmops.drift.features import (
    InvalidWindow,
    Sample,
    answer_of_row,
    is_refusal,
    parse_window,
    prompt_of_request,
    prompt_of_row,
)

pytest.importorskip("numpy")
pytest.importorskip("py3langid")

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
OPTIONS = CheckOptions(permutations=199, seed=1)


def _sample(
    texts: list[str], *, refusals: int = 0, errors: int = 0, thumbs: tuple[int, int] = (40, 10)
) -> Sample:
    answers = [f"Sure, here is what to do about: {text}" for text in texts]
    for index in range(refusals):
        answers[index] = "I'm sorry, but I can't help with that request."
    return Sample(
        prompts=texts,
        answers=answers,
        total=len(texts) + errors,
        sampled=len(texts),
        errors=errors,
        thumbs_up=thumbs[0],
        thumbs_down=thumbs[1],
    )


@pytest.fixture(scope="module")
def detector() -> LanguageIdentifier:
    """py3langid, loaded once for the module (~0.8 s)."""
    from llmops.datasets.language import LanguageDetector

    return LanguageDetector(min_chars=12)


def _run(
    reference: Sample, current: Sample, detector: LanguageIdentifier, options: CheckOptions = OPTIONS
) -> dict[str, CheckResult]:
    context = CheckContext(reference, current, options, embedder=WordHashEmbedder, languages=lambda: detector)
    return {result.name: result for result in run_checks(context)}


def test_a_planted_language_shift_is_drift(detector: LanguageIdentifier) -> None:
    rng = random.Random(3)
    options = CheckOptions(seed=1)  # 999 permutations: p down to 0.001, below alpha after Holm's adjustment
    results = _run(
        _sample(prompts(rng, 300, REFERENCE_MIX)), _sample(prompts(rng, 300, SHIFTED_MIX)), detector, options
    )
    language = results["language"]
    assert language.status == "drift"
    assert language.p_value is not None
    assert language.p_value < 1e-6
    assert 0.2 < (language.effect or 0) < 0.4  # about 30% of prompts changed language
    assert {share["language"] for share in language.details["shares"]} >= {"en", "de"}
    topics = results["new_topics"]
    assert topics.status == "drift"
    clusters = topics.details["clusters"]
    assert clusters, topics.summary
    german = ("Kreditkarte", "Rechnung")
    assert all(any(word in cluster["examples"][0] for word in german) for cluster in clusters)
    assert sum(cluster["share"] for cluster in clusters) > 0.2
    assert results["embedding"].status == "drift"
    assert results["embedding"].p_value == 1 / 1001
    score, drifted = overall(list(results.values()))
    assert drifted
    assert score == pytest.approx(
        max(r.effect or 0 for r in results.values() if r.status == "drift"), abs=1e-4
    )


def test_samples_of_one_population_are_not_drift(detector: LanguageIdentifier) -> None:
    for seed in range(3):
        rng = random.Random(100 + seed)
        results = _run(
            _sample(prompts(rng, 250, REFERENCE_MIX)), _sample(prompts(rng, 250, REFERENCE_MIX)), detector
        )
        assert [r.name for r in results.values() if r.status == "drift"] == [], seed
        assert overall(list(results.values())) == (0.0, False)
        for result in results.values():
            if result.p_value is not None:
                assert result.p_adjusted is not None
                assert result.p_adjusted >= result.p_value


def test_rates_compare_refusals_errors_and_thumbs(detector: LanguageIdentifier) -> None:
    rng = random.Random(5)
    reference = _sample(prompts(rng, 200, REFERENCE_MIX), refusals=4, errors=2, thumbs=(90, 10))
    current = _sample(prompts(rng, 200, REFERENCE_MIX), refusals=60, errors=40, thumbs=(50, 50))
    results = _run(reference, current, detector)
    for name in ("refusal_rate", "error_rate", "thumbs_down_rate"):
        assert results[name].status == "drift", results[name].summary
    assert results["refusal_rate"].effect == pytest.approx(0.28)
    assert results["refusal_rate"].details["current"]["count"] == 60
    assert results["error_rate"].test == "two-proportion z-test"
    low, high = results["thumbs_down_rate"].details["current"]["interval"]
    assert low < 0.5 < high


def test_small_counts_use_fishers_exact_test(detector: LanguageIdentifier) -> None:
    rng = random.Random(6)
    texts = prompts(rng, 40, REFERENCE_MIX)
    results = _run(_sample(texts, errors=0), _sample(texts, errors=2), detector)
    assert results["error_rate"].test == "Fisher's exact test"
    assert results["error_rate"].status == "ok"


def test_checks_that_cannot_run_say_why() -> None:
    rng = random.Random(7)
    dataset = Sample(prompts=prompts(rng, 50, REFERENCE_MIX), answers=[], total=50, sampled=50)
    current = _sample(prompts(rng, 5, REFERENCE_MIX))
    current.without_content = 45  # traces stored with trace_content off
    context = CheckContext(dataset, current, OPTIONS, embedder=lambda: None)
    results = {result.name: result for result in run_checks(context)}
    assert results["error_rate"].summary == "a dataset reference has no error rate"
    assert results["thumbs_down_rate"].status == "skipped"
    assert "at least 10 prompts" in results["prompt_length"].summary
    assert "45 sampled traces were stored without content" in results["prompt_length"].summary
    assert "at least 10 answers" in results["answer_length"].summary
    assert results["embedding"].summary.startswith("needs the embedded MiniLM model")
    assert all(result.status == "skipped" for result in results.values())
    assert overall(list(results.values())) == (0.0, False)


def test_only_the_chosen_checks_run_and_the_embedder_is_called_once() -> None:
    rng = random.Random(8)
    embedder = WordHashEmbedder()
    options = CheckOptions(permutations=99, checks=("embedding", "new_topics", "language"))
    context = CheckContext(
        _sample(prompts(rng, 60, REFERENCE_MIX)),
        _sample(prompts(rng, 60, REFERENCE_MIX)),
        options,
        embedder=lambda: embedder,
    )
    assert [result.name for result in run_checks(context)] == ["language", "embedding", "new_topics"]
    assert embedder.calls == 1
    assert set(CHECK_NAMES) >= set(options.checks or ())


def test_length_check_details_carry_the_plot_data(detector: LanguageIdentifier) -> None:
    short = [f"q{n}" * 3 for n in range(50)]
    long = [f"a much longer question number {n} " * 4 for n in range(50)]
    result = _run(_sample(short), _sample(long), detector, CheckOptions(checks=("prompt_length",)))
    result = result["prompt_length"]
    assert result.status == "drift"
    assert result.statistic == 1.0
    assert result.details["psi"] > 0.25
    quantiles = result.details["quantiles"]
    assert len(quantiles["p"]) == len(quantiles["reference"]) == len(quantiles["current"]) == 41
    assert quantiles["reference"] == sorted(quantiles["reference"])


def test_a_p_value_of_zero_is_flagged(detector: LanguageIdentifier) -> None:
    # 50 short prompts against 50 long ones: the exact KS p-value, 2/C(100, 50), rounds to 0.0
    short = [f"q{n}" * 3 for n in range(50)]
    long = [f"a much longer question number {n} " * 4 for n in range(50)]
    result = _run(_sample(short), _sample(long), detector, CheckOptions(checks=("prompt_length",)))
    length = result["prompt_length"]
    assert length.p_value == 0.0
    assert length.status == "drift"
    assert length.flagged is True


def test_refusals_are_recognised() -> None:
    assert is_refusal("I’m sorry, but I can’t help with that.")
    assert is_refusal("Sorry, I can't do this")
    assert is_refusal("As an AI language model, I cannot   browse the web.")
    assert not is_refusal("Sorry for the wait! Here is the answer.")
    assert not is_refusal("You can't go wrong with the blue one.")


def test_text_of_requests_and_rows() -> None:
    chat = {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "last"}]},
        ]
    }
    assert prompt_of_request(chat) == "last"
    assert prompt_of_request('{"prompt": "complete me"}') == "complete me"
    assert prompt_of_request({"input": ["a", "b"]}) == "a\nb"
    assert prompt_of_request(None) is None
    assert prompt_of_request("not json") is None
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    assert (prompt_of_row(row), answer_of_row(row)) == ("hi", "hello")
    assert (
        prompt_of_row({"input": "q", "expected": "a"}),
        answer_of_row({"input": "q", "expected": "a"}),
    ) == ("q", "a")


def test_windows() -> None:
    window = parse_window("7d..1d", NOW)
    assert (window.since, window.until) == (NOW - timedelta(days=7), NOW - timedelta(days=1))
    assert parse_window("1d", NOW).until == NOW
    assert parse_window("2026-11-01..2026-11-08T12:00", NOW).until == datetime(2026, 11, 8, 12, tzinfo=UTC)
    assert parse_window("12h..now", NOW).since == NOW - timedelta(hours=12)
    for bad, message in (
        ("1d..7d", "ends before it starts"),
        ("soon", "expected START..END"),
        ("..1d", "no start"),
    ):
        with pytest.raises(InvalidWindow, match=message):
            parse_window(bad, NOW)
