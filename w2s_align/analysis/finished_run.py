"""A finished run as `w2s-align analyze RUN_DIR [analysis.KEY=VALUE ...]` reads it, checked before torch is imported
(a mistake stops in a fraction of a second, not after seconds of imports): its recipe with the analysis overrides
applied by the recipe loader (every field's type and range, as for `run`), its plan, its saved metrics, and that the
bootstrap of the analysis settings fits in memory. [`w2s_align.analysis.report`] then reads the predictions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifacts import RunDir
from ..errors import W2SInputError
from ..plan import Plan
from ..plan_builder import build_plan
from ..recipe_yaml import load_recipe
from .intervals import check_bootstrap_size


@dataclass(frozen=True)
class FinishedRun:
    """A run directory with the settings `analyze` recomputes its metrics under."""

    run_dir: Path
    plan: Plan  # of the run's recipe with the analysis overrides
    saved: dict[str, dict[str, Any]]  # metrics.json's models: what is kept of them (their training time)


def load_finished_run(run_dir: str | Path, overrides: Sequence[str] = ()) -> FinishedRun:
    """The run in `run_dir`, with `overrides` (`analysis.KEY=VALUE`) applied to its recipe.

    Raises:
        W2SInputError: the directory is not a finished run (no or damaged config.yaml or metrics.json, a file where
            its plots go), an override is not an analysis setting or its value is out of range, or the bootstrap of
            the run's test pairs would not fit in memory.
    """
    run_dir = Path(run_dir)
    config, metrics_file = RunDir(run_dir).config, RunDir(run_dir).metrics
    if not config.is_file() or not metrics_file.is_file():
        raise W2SInputError(f"{run_dir}: not a finished run directory (needs config.yaml and metrics.json)")
    for override in overrides:
        if not override.startswith("analysis."):
            raise W2SInputError(f"override {override!r}: analyze only changes analysis.* settings")
    try:
        metrics = json.loads(metrics_file.read_text())
        saved, n_test = metrics["models"], metrics["n_test"]
    except (ValueError, KeyError, TypeError) as error:
        raise W2SInputError(f"{metrics_file}: not the metrics of a finished run ({error})") from None
    if not isinstance(saved, dict) or not all(isinstance(info, dict) for info in saved.values()):
        raise W2SInputError(f"{metrics_file}: not the metrics of a finished run ('models' is not a mapping of models)")
    if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 1:
        raise W2SInputError(f"{metrics_file}: not the metrics of a finished run ('n_test' is {n_test!r}, not a count)")
    plots = RunDir(run_dir).plots
    if plots.exists() and not plots.is_dir():
        raise W2SInputError(f"{plots}: a file where the run's plots go (move it away, then analyze again)")
    recipe = load_recipe(config, list(overrides))
    check_bootstrap_size(n_test, recipe.analysis.n_bootstrap, f"analysis.n_bootstrap of {run_dir}")
    return FinishedRun(run_dir, build_plan(recipe), saved)
