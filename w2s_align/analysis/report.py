"""The report of a run: its metrics computed once (the plan's report stage), drawn and written to the run directory
(`metrics.json`, `report.md`, `plots/`), and recomputed from the saved predictions by `w2s-align analyze RUN_DIR`
without retraining.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..artifacts import atomic_copy, atomic_write_json, atomic_write_text, model_file
from ..cache import StageCache
from ..data import check_parquet
from ..distributed import is_main_process
from ..errors import W2SInputError
from ..plan import Plan, build_plan
from ..recipe_yaml import apply_override, read_yaml_file, recipe_from_dict
from ..run_lock import RunLock
from ..training import PREDICTIONS_FILE, TEACHER_COLUMN, TRAIN_PREDICTIONS_FILE
from .plots import (
    FIGURES,
    draw_figures,
    draw_training_curves,
    matplotlib_available,
)
from .render import render_console, render_markdown
from .results import build_metrics


def write_report(run_dir: Path, metrics: dict[str, Any], figures: Path) -> None:
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
    atomic_write_json(run_dir / "metrics.json", metrics, sort_keys=False)
    atomic_write_text(run_dir / "report.md", render_markdown(metrics, shown))


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
    run_dir: str | Path, overrides: list[str] | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Recompute `metrics.json`, the plots and `report.md` of a finished run from its saved predictions (no
    retraining). `overrides` change the analysis settings, e.g. `["analysis.known=confident"]`.

    Raises:
        W2SInputError: the directory is not a finished run, or a model's predictions are missing or misaligned.
    """
    run_dir = Path(run_dir)
    config, metrics_file = run_dir / "config.yaml", run_dir / "metrics.json"
    if not config.is_file() or not metrics_file.is_file():
        raise W2SInputError(f"{run_dir}: not a finished run directory (needs config.yaml and metrics.json)")
    with RunLock(run_dir):  # not while a run writes there
        return _analyze(run_dir, config, metrics_file, overrides or [], log)


def _analyze(
    run_dir: Path, config: Path, metrics_file: Path, overrides: list[str], log: Callable[[str], None]
) -> dict[str, Any]:
    raw = read_yaml_file(config)
    try:
        saved = json.loads(metrics_file.read_text())["models"]
    except (ValueError, KeyError, TypeError) as error:
        raise W2SInputError(f"{metrics_file}: not the metrics of a finished run ({error})") from None
    if not isinstance(raw, dict):
        raise W2SInputError(f"{config}: not a recipe (a mapping of keys to values)")
    if not isinstance(saved, dict) or not all(isinstance(info, dict) for info in saved.values()):
        raise W2SInputError(f"{metrics_file}: not the metrics of a finished run ('models' is not a mapping of models)")
    plots = run_dir / "plots"
    if plots.exists() and not plots.is_dir():
        raise W2SInputError(f"{plots}: a file where the run's plots go (move it away, then analyze again)")
    for override in overrides:
        if not override.startswith("analysis."):
            raise W2SInputError(f"override {override!r}: analyze only changes analysis.* settings")
        apply_override(raw, override)
    plan = build_plan(recipe_from_dict(raw, source=str(config)))
    predictions, training = {}, {}
    for spec in plan.models:
        path = model_file(run_dir, "predictions", spec.key, ".parquet")
        if not path.is_file():
            raise W2SInputError(f"{run_dir}: the predictions of model {spec.key!r} are missing ({path})")
        predictions[spec.key] = _read_predictions(path)
        path = model_file(run_dir, "predictions/train", spec.key, ".parquet")
        if path.is_file():
            training[spec.key] = _read_predictions(path, TRAIN_COLUMNS)
    seconds = {key: info.get("train_seconds") for key, info in saved.items()}
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
    return predictions
