"""The report of a run: its metrics computed once (the plan's report stage), drawn and written to the run directory
(`metrics.json`, `report.md`, `plots/`), and recomputed from the saved predictions by `w2s-align analyze RUN_DIR`
without retraining.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from ..artifacts import RunDir, atomic_copy, atomic_write_json, atomic_write_text
from ..cache import StageCache
from ..data import check_parquet
from ..distributed import is_main_process
from ..errors import W2SInputError
from ..plan import Plan
from ..run_lock import RunLock
from ..training import PREDICTIONS_FILE, TEACHER_COLUMN, TRAIN_PREDICTIONS_FILE
from .finished_run import FinishedRun, load_finished_run
from .plots import (
    FIGURES,
    draw_figures,
    draw_training_curves,
    matplotlib_available,
)
from .render import render_console, render_markdown
from .results import build_metrics
from .schema import RunMetrics


def write_report(run_dir: Path, metrics: RunMetrics, figures: Path) -> None:
    """Write `metrics.json` and `report.md` of a run (main process), with the plots [`draw_figures`] drew in
    `figures`, copied to `run_dir/plots` when they were drawn elsewhere, and every model's training curves."""
    if not is_main_process():
        return
    shown: dict[str, str] | None = {} if matplotlib_available() else None
    if shown is not None:
        if draw_training_curves(run_dir, metrics):
            shown["Training curves, one figure per model"] = "plots/training/"
        for name, caption, _ in FIGURES:
            source, target = figures / name, run_dir / "plots" / name
            if source.is_file():
                if source != target:
                    atomic_copy(source, target)
                shown[caption] = f"plots/{name}"
    # Unsorted: the order of models and rows is the training order, which `analyze` reproduces from this file.
    atomic_write_json(RunDir(run_dir).metrics, metrics, sort_keys=False)
    atomic_write_text(RunDir(run_dir).report, render_markdown(metrics, shown))


def cached_metrics(plan: Plan, cache: StageCache) -> tuple[dict[str, Any], Path]:
    """The metrics of a run's trained models and the directory of their figures, computed once per set of models and
    analysis settings: the plan's report stage, so that a rerun of a finished recipe does not redo the bootstrap."""
    stage = cache.stage(plan.report)
    if not stage.done:
        stages = {spec.key: cache.stage(spec) for spec in plan.models}
        predictions = {key: Dataset.from_parquet(str(s.path(PREDICTIONS_FILE))) for key, s in stages.items()}
        training = {
            key: Dataset.from_parquet(str(s.path(TRAIN_PREDICTIONS_FILE)))
            for key, s in stages.items()
            if s.path(TRAIN_PREDICTIONS_FILE).is_file()
        }
        seconds = {key: s.summary().get("train_seconds") for key, s in stages.items()}
        metrics = build_metrics(plan, predictions, seconds, training)
        stage.begin()
        draw_figures(metrics, stage.path("plots"))
        atomic_write_json(stage.path("metrics.json"), metrics, sort_keys=False)
        stage.finish()
    return json.loads(stage.path("metrics.json").read_text()), stage.path("plots")


def analyze_run(
    run_dir: str | Path, overrides: Sequence[str] = (), log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Recompute `metrics.json`, the plots and `report.md` of a finished run from its saved predictions (no
    retraining). `overrides` change the analysis settings, e.g. `["analysis.known=confident"]`.

    Raises:
        W2SInputError: the directory is not a finished run, an override is out of range, or a model's predictions
            are missing, misaligned or hold a value that is not a probability.
    """
    return analyze_finished_run(load_finished_run(run_dir, overrides), log)


def analyze_finished_run(run: FinishedRun, log: Callable[[str], None] = print) -> dict[str, Any]:
    """[`analyze_run`] of a run already read by [`load_finished_run`] (`w2s-align analyze` reads it before torch)."""
    with RunLock(run.run_dir):  # not while a run writes there
        return _analyze(run, log)


def _analyze(run: FinishedRun, log: Callable[[str], None]) -> dict[str, Any]:
    run_dir, plan = run.run_dir, run.plan
    predictions, training = {}, {}
    for spec in plan.models:
        path = RunDir(run_dir).predictions(spec.key)
        if not path.is_file():
            raise W2SInputError(f"{run_dir}: the predictions of model {spec.key!r} are missing ({path})")
        predictions[spec.key] = _read_predictions(path)
        path = RunDir(run_dir).train_predictions(spec.key)
        if path.is_file():
            training[spec.key] = _read_predictions(path, TRAIN_COLUMNS)
    seconds = {key: info.get("train_seconds") for key, info in run.saved.items()}
    try:
        metrics = build_metrics(plan, predictions, seconds, training)
    except ValueError as error:
        raise W2SInputError(f"{run_dir}: {error}") from None
    draw_figures(metrics, run_dir / "plots")
    write_report(run_dir, metrics, run_dir / "plots")
    log(render_console(metrics))
    return metrics


# What the analysis reads of a model's saved predictions: on the test split, and on the split a student learned from.
ANALYSIS_COLUMNS = ("id", "prob_chosen", "correct")
TRAIN_COLUMNS = ("id", "prob_chosen", TEACHER_COLUMN)
COLUMN_KINDS = {"prob_chosen": ("float",), "correct": ("bool",), TEACHER_COLUMN: ("float",)}
PROBABILITIES = ("prob_chosen", TEACHER_COLUMN)  # the model's, and the teacher's label


def _read_predictions(path: Path, columns: tuple[str, ...] = ANALYSIS_COLUMNS) -> Dataset:
    """A model's saved predictions, or one clear error naming the file: unreadable, empty, or missing columns."""
    if check_parquet(path).num_rows == 0:
        raise W2SInputError(f"{path}: holds no predictions")
    predictions = Dataset.from_parquet(str(path))
    missing = [column for column in columns if column not in predictions.column_names]
    if missing:
        raise W2SInputError(f"{path}: predictions without the column(s) {missing}")
    for column in columns[1:]:
        kinds = COLUMN_KINDS[column]
        dtype = predictions.features[column].dtype
        if not dtype.startswith(kinds):
            raise W2SInputError(f"{path}: the column {column!r} holds {dtype} values, not {kinds[0]}")
        _check_values(path, predictions, column)
    return predictions


def _check_values(path: Path, predictions: Dataset, column: str) -> None:
    """One line naming `path` and the first row (counted from 0, as pandas does) whose `column` is null, or for one
    of the [`PROBABILITIES`] NaN, infinite or outside [0, 1]: a statistic over it would be NaN, or silently wrong."""
    raw = predictions.data.column(column).to_pylist()
    values = np.asarray(raw, dtype=float)  # a null is NaN here
    probability = column in PROBABILITIES
    bad = ~((values >= 0) & (values <= 1)) if probability else np.isnan(values)
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    value = "null" if raw[row] is None else repr(raw[row])
    wanted = "a probability in [0, 1]" if probability else "true or false"
    more = f" (and {int(bad.sum()) - 1} more)" if bad.sum() > 1 else ""
    pair_id = predictions.data.column("id")[row].as_py()
    raise W2SInputError(f"{path}: row {row} (id {pair_id!r}): {column!r} is {value}, not {wanted}{more}")
