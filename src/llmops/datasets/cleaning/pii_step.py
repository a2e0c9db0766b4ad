"""The ``pii`` cleaning step: redact personal data in the chosen fields, or drop the rows holding it.

It uses the run's :class:`~llmops.pii.PiiService` (``StepContext.pii``, so the spaCy model loads once
per run) or builds one. The report counts findings per entity in ``details["entities"]``; its
examples never show the original values: the "before" side of an example is masked (``****@***.**``),
because reports are stored with the dataset version that was meant to be free of them.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import Field

from llmops.datasets.cleaning.base import (
    CleaningError,
    CleaningStep,
    MissingExtraError,
    StepContext,
    StepParams,
    StepReport,
)
from llmops.datasets.rows import Row, field_texts, map_texts
from llmops.pii import NlpUnavailable, PiiError, PiiFinding, PiiService

Strategy = Literal["mask", "mask_last4", "tag", "hash", "drop"]


class PiiParams(StepParams):
    strategy: Strategy = "tag"
    strategies: dict[str, Strategy] = Field(default_factory=dict, description="Per-entity overrides.")
    entities: list[str] | None = Field(default=None, description="Default: every available entity.")
    salt: str | None = Field(default=None, description="Salt of the hash strategy (else the run's).")


class PiiStep(CleaningStep):
    """Redact PII (mask, tag, hash) or drop rows that contain it; see the module docstring."""

    name = "pii"
    Params = PiiParams
    params: PiiParams

    def __init__(self, params: StepParams, context: StepContext) -> None:
        super().__init__(params, context)
        self._strategy: dict[str, str] = {**self.params.strategies, "default": self.params.strategy}
        self._counts: Counter[str] = Counter()
        try:
            self.service = self._service(context)
            self.service.check(self._strategy, self.params.entities)
        except NlpUnavailable as exc:
            raise MissingExtraError(f"step 'pii': {exc.message}") from exc
        except PiiError as exc:
            raise CleaningError(f"step 'pii': {exc.message}") from exc

    def _service(self, context: StepContext) -> PiiService:
        shared = context.pii
        if shared is not None and self.params.salt in (None, shared.salt):
            return shared
        return PiiService(
            salt=self.params.salt or (shared.salt if shared else None), entities=self.params.entities
        )

    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        found: dict[str, list[PiiFinding]] = {}
        for path in self.params.fields:
            for text in field_texts(row, path):
                if text not in found:
                    found[text] = self.service.analyze(text, self.params.entities)
        entities = Counter(finding.entity for findings in found.values() for finding in findings)
        if not entities:
            return row
        self._counts.update(entities)
        shown = self._rewrite(row, found, "mask")
        dropping = sorted(entity for entity in entities if self._strategy_of(entity) == "drop")
        if dropping:
            report.record_removed(position, f"contains {', '.join(dropping)}", shown)
            return None
        after = self._rewrite(row, found, self._strategy)
        report.record_changed(position, f"redacted {', '.join(sorted(entities))}", shown, after)
        return after

    def finish(self, report: StepReport) -> None:
        report.details["entities"] = dict(sorted(self._counts.items()))
        report.details["nlp"] = self.service.nlp_available
        if self.service.skipped_entities and self.params.entities is None:
            report.details["skipped_entities"] = list(self.service.skipped_entities)

    def _strategy_of(self, entity: str) -> str:
        return self.params.strategies.get(entity, self.params.strategy)

    def _rewrite(self, row: Row, found: dict[str, list[PiiFinding]], strategy: str | dict[str, str]) -> Row:
        replaced = {
            text: self.service.replace(text, findings, strategy).text
            for text, findings in found.items()
            if findings
        }
        return map_texts(row, self.params.fields, lambda text: replaced.get(text, text))
