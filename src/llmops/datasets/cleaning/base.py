"""The shape of a cleaning step, its report, and the registry that finds steps by name.

A step is one class: ``name`` (what recipes call it), ``Params`` (a pydantic model of its settings,
unknown keys refused), and :meth:`CleaningStep.apply`, which sees one row at a time and returns it
(changed or not) or ``None`` to remove it, recording why in the :class:`StepReport`. A step that must
see every row before deciding (outlier filters, near-duplicate removal) sets ``needs_scan`` and gets
:meth:`CleaningStep.scan` over the same rows first. Rows arrive with their position in the step's
input, so a decision taken in ``scan`` can be applied by position.

Steps are found through :class:`StepRegistry`: the built-ins by module path, third-party steps through
the ``llmops.cleaning_steps`` entry-point group. Classes are imported on first use, so a recipe that
does not de-duplicate never imports datasketch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import UnionType
from typing import TYPE_CHECKING, Any, ClassVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator

from llmops.datasets.rows import TEXT_FIELDS, Row
from llmops.errors import UserError
from llmops.plugins import PluginTable

if TYPE_CHECKING:
    from llmops.pii import PiiService

ENTRY_POINT_GROUP = "llmops.cleaning_steps"
MAX_EXAMPLES = 5


class CleaningError(UserError):
    """A recipe or step configuration that cannot run; the message is one readable line."""


class MissingExtraError(CleaningError):
    """A step needs an optional extra that is not installed (the message says which)."""


class StepParams(BaseModel):
    """Settings every step accepts; a step's own ``Params`` subclasses this."""

    model_config = ConfigDict(extra="forbid")

    fields: list[str] = list(TEXT_FIELDS)

    @model_validator(mode="before")
    @classmethod
    def _one_item_lists(cls, data: Any) -> Any:
        """Accept a single string where a list is expected (``fields: input``, ``--step x:fields=input``)."""
        if not isinstance(data, dict):
            return data
        return {
            key: [value] if isinstance(value, str) and _expects_list(cls, key) else value
            for key, value in data.items()
        }


def _expects_list(model: type[BaseModel], name: str) -> bool:
    info = model.model_fields.get(name)
    if info is None:
        return False
    annotation = info.annotation
    candidates = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    return any(get_origin(candidate) is list or candidate is list for candidate in candidates)


@dataclass
class StepContext:
    """What steps may need besides their parameters; built once per cleaning run."""

    pii: PiiService | None = None
    seed: int = 0


@dataclass
class StepReport:
    """What one step did: counts, reasons, a few examples, and step-specific details."""

    step: str
    params: dict[str, Any]
    rows_in: int = 0
    rows_out: int = 0
    removed: int = 0
    changed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def record_removed(self, position: int, reason: str, row: Row, *, group: str | None = None) -> None:
        """Count a removed row. ``group`` is the key counted in ``reasons`` when ``reason`` carries
        row-specific numbers ("duplicate of row 17"), so the summary does not split into one line per row."""
        self.removed += 1
        self.reasons[group or reason] += 1
        self._example({"position": position, "action": "removed", "reason": reason, "row": row})

    def record_changed(
        self, position: int, reason: str, before: Row, after: Row, *, group: str | None = None
    ) -> None:
        """Count a changed row; ``group`` as in :meth:`record_removed`."""
        self.changed += 1
        self.reasons[group or reason] += 1
        self._example(
            {"position": position, "action": "changed", "reason": reason, "before": before, "after": after}
        )

    def _example(self, example: dict[str, Any]) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "params": self.params,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "removed": self.removed,
            "changed": self.changed,
            "reasons": dict(self.reasons),
            "examples": self.examples,
            "details": self.details,
        }


class CleaningStep(ABC):
    """One configurable cleaning unit (see the module docstring)."""

    name: ClassVar[str]
    Params: ClassVar[type[StepParams]] = StepParams
    needs_scan: ClassVar[bool] = False

    def __init__(self, params: StepParams, context: StepContext) -> None:
        self.params = params
        self.context = context

    def scan(self, rows: Iterable[tuple[int, Row]]) -> None:  # noqa: B027 - optional hook
        """See every row (position, row) before any :meth:`apply`; only called when ``needs_scan``."""

    @abstractmethod
    def apply(self, position: int, row: Row, report: StepReport) -> Row | None:
        """The row to keep (possibly changed), or None to remove it; record why in ``report``."""

    def finish(self, report: StepReport) -> None:  # noqa: B027 - optional hook
        """Add step-specific details (clusters, thresholds found) once every row has passed."""


_STEPS = "llmops.datasets.cleaning"
BUILTIN_STEPS: dict[str, str] = {
    "normalize_unicode": f"{_STEPS}.text_steps:NormalizeUnicode",
    "clean_whitespace": f"{_STEPS}.text_steps:CleanWhitespace",
    "strip_html": f"{_STEPS}.text_steps:StripHtml",
    "lowercase": f"{_STEPS}.text_steps:Lowercase",
    "remove_stopwords": f"{_STEPS}.language_steps:RemoveStopwords",
    "correct_spelling": f"{_STEPS}.language_steps:CorrectSpelling",
    "filter_language": f"{_STEPS}.language_steps:FilterLanguage",
    "drop_empty": f"{_STEPS}.filter_steps:DropEmpty",
    "filter_length": f"{_STEPS}.filter_steps:FilterLength",
    "filter_outliers": f"{_STEPS}.filter_steps:FilterOutliers",
    "dedup_exact": f"{_STEPS}.dedup_steps:DedupExact",
    "dedup_near": f"{_STEPS}.near_dedup:DedupNear",
    "pii": f"{_STEPS}.pii_step:PiiStep",
}
"""The built-in steps: recipe name -> "module:Class" (imported on first use)."""


class StepRegistry:
    """Cleaning steps by name; one instance per run (or per server), no global state."""

    def __init__(self, targets: dict[str, str] | None = None, *, load_plugins: bool = True) -> None:
        self._table: PluginTable[CleaningStep] = PluginTable(
            BUILTIN_STEPS if targets is None else targets,
            group=ENTRY_POINT_GROUP,
            base=CleaningStep,
            what="cleaning step",
            error=CleaningError,
            load_plugins=load_plugins,
        )

    def names(self) -> list[str]:
        return self._table.names()

    def register(self, cls: type[CleaningStep]) -> type[CleaningStep]:
        """Register a step class under its ``name``; usable as a decorator on a registry instance."""
        self._table.register(cls.name, cls)
        return cls

    def get(self, name: str) -> type[CleaningStep]:
        return self._table.get(name)

    def create(self, name: str, params: dict[str, Any] | None, context: StepContext) -> CleaningStep:
        """Build step ``name`` with ``params`` validated by its ``Params`` model (errors: one line)."""
        from pydantic import ValidationError

        cls = self.get(name)
        try:
            validated = cls.Params.model_validate(params or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'params'}: "
                + error["msg"].removeprefix("Value error, ")  # a validator's own message, as written
                for error in exc.errors()
            )
            raise CleaningError(f"step {name!r}: {problems}") from exc
        return cls(validated, context)
