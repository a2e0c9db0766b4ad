"""Drift detection: compare a current window of traffic with a reference (an earlier window of traces or
a dataset version), per model or prompt, and say what moved and how sure that is.

- :mod:`llmops.drift.service`: :class:`~llmops.drift.service.DriftService` (``run``, ``score`` for
  alert rules, stored checks), :class:`~llmops.drift.service.DriftRequest`.
- :mod:`llmops.drift.checks`: the checks (lengths, language, embeddings, new topics, refusal, error and
  thumbs-down rates), the multiple-testing adjustment and the overall score.
- :mod:`llmops.drift.statistics`: the tests themselves (KS, PSI, chi-square, energy distance with
  permutations, Fisher, Holm, k-means), without scipy.
- :mod:`llmops.drift.features`: windows, and samples of traces or dataset rows.
- :mod:`llmops.drift.report`: the self-contained HTML report and the terminal summary.
"""
