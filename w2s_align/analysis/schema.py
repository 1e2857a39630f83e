"""What a run's `metrics.json` holds, as typed records: [`RunMetrics`] and its rows.

[`w2s_align.analysis.results.build_metrics`] builds it; the report, the figures, the trackers and `w2s-align analyze`
read it. An interval is a dict with `value`, `ci_low` and `ci_high` (and, for statistics over seeds, `per_seed` and
`defined_seeds`): [`Interval`].

Example:

```python
>>> from w2s_align.analysis.schema import RunMetrics, StudentRow
>>> sorted(RunMetrics.__required_keys__)[:4]
['accuracy', 'analysis', 'comparisons', 'evaluated_on']
>>> "pgr_ci" in StudentRow.__annotations__
True
```
"""

from __future__ import annotations

from typing import Any, TypedDict

Interval = dict[str, Any]


class ModelRow(TypedDict):
    """One trained model (a ceiling, a student, an ensemble) on one seed: `metrics["models"][key]`, beside what its
    spec records (`role`, `rung`, `seed`, its teacher chain and settings)."""

    label: str
    train_seconds: float | None
    accuracy: float
    at_chance: bool
    accuracy_by_kind: dict[str, float]


class AccuracyRow(TypedDict):
    """One model over its seeds: its accuracy with its interval (the report's accuracy table)."""

    label: str
    seeds: int
    value: float
    ci_low: float | None
    ci_high: float | None


class StudentRow(TypedDict):
    """One student over its seeds, against its weak teacher and strong ceiling: `metrics["students"]` (the report's
    PGR, deception and controls tables)."""

    label: str
    weak: str
    via: list[str]
    strong: str
    method: str
    conflict: str
    label_filter: str
    mitigation: str
    control: str | None
    weak_accuracy: float
    strong_accuracy: float
    student_accuracy: float
    weak_accuracy_ci: Interval
    strong_accuracy_ci: Interval
    student_accuracy_ci: Interval
    gap: float
    gap_ci: Interval
    gap_within_noise: bool  # the gap's interval reaches 0: the report prints "gap within noise", not a PGR
    pgr: float | None
    pgr_ci: Interval
    agreement_with_weak: float
    per_seed: list[dict[str, Any]]
    ds_paper: Interval
    targeting: Interval | None
    against_controls: dict[str, Any] | None  # a conflicted student's deception against its controls
    deception_effect: Interval | None
    verdict: str | None  # deception beyond imitation
    added_verdict: str | None  # teacher-aligned error added by the conflict
    deception: dict[str, Any]  # every deception statistic (w2s_align.analysis.deception.deception_statistics)
    table: dict[str, dict[str, Any]]  # the student's error rate by knowledge area


class _Timed(TypedDict, total=False):
    wall_seconds: float  # added by the run that wrote the report


class RunMetrics(_Timed):
    """A run's `metrics.json`."""

    recipe: str
    evaluated_on: str  # "test", or "validation" (a slice of the ground-truth split)
    n_test: int
    unit: str  # what the test split holds: "pairs", or "examples" (a classification run)
    seeds: list[int]
    pgr_min_gap: float  # the smallest gap PGR is computed for (one test pair)
    analysis: dict[str, Any]  # the recipe's analysis settings
    models: dict[str, ModelRow]
    accuracy: list[AccuracyRow]
    students: list[StudentRow]
    comparisons: list[dict[str, Any]]  # paired differences between students
