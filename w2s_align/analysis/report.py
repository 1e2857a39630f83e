"""Metrics of a run (accuracy of every model, PGR of every pair and method) and their markdown/console rendering.

Everything here is computed from saved per-example predictions, so `w2s-align analyze RUN_DIR` recomputes the same
numbers without retraining.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from datasets import Dataset

from ..artifacts import atomic_write_json, atomic_write_text
from ..errors import W2SInputError
from .metrics import accuracy, agreement, pgr


def _mean(values: list[float]) -> float:
    return float(statistics.fmean(values))


def _by_kind(predictions: Dataset) -> dict[str, float]:
    if "kind" not in predictions.column_names:
        return {}
    kinds = np.asarray(predictions["kind"])
    correct = np.asarray(predictions["correct"])
    return {str(kind): float(correct[kinds == kind].mean()) for kind in sorted(set(kinds.tolist()))}


def build_metrics(recipe: Any, models: dict[str, dict[str, Any]], predictions: dict[str, Dataset]) -> dict[str, Any]:
    """Accuracy of every model and PGR of every (pair, method), per seed and over seeds.

    Args:
        recipe: the run's [`Recipe`] (for its name, pairs, methods and seeds).
        models: model key -> `{"role": "ceiling"|"student", "rung", "seed", ["weak", "method"]}`.
        predictions: model key -> its per-example test predictions, all aligned on the same ids.
    """
    ids = None
    for key, frame in predictions.items():
        if ids is None:
            ids = list(frame["id"])
        elif list(frame["id"]) != ids:
            raise ValueError(f"predictions of {key} are not aligned with the other models' test examples")
    n_test = len(ids or [])
    min_gap = 1.0 / max(n_test, 1)
    out_models = {}
    for key, info in models.items():
        out_models[key] = {
            **info,
            "accuracy": accuracy(predictions[key]),
            "accuracy_by_kind": _by_kind(predictions[key]),
        }

    def ceiling(rung: str, seed: int) -> str:
        return f"{rung}.gt.seed{seed}"

    rows = []
    for pair in recipe.pairs:
        for method in recipe.methods:
            per_seed = []
            for seed in recipe.seeds:
                student = f"{pair.strong}.from-{pair.weak}.{method}.seed{seed}"
                weak_acc = out_models[ceiling(pair.weak, seed)]["accuracy"]
                strong_acc = out_models[ceiling(pair.strong, seed)]["accuracy"]
                student_acc = out_models[student]["accuracy"]
                per_seed.append(
                    {
                        "seed": seed,
                        "weak": weak_acc,
                        "strong": strong_acc,
                        "student": student_acc,
                        "pgr": pgr(weak_acc, strong_acc, student_acc, min_gap),
                        "agreement_with_weak": agreement(predictions[student], predictions[ceiling(pair.weak, seed)]),
                    }
                )
            weak_acc = _mean([row["weak"] for row in per_seed])
            strong_acc = _mean([row["strong"] for row in per_seed])
            student_acc = _mean([row["student"] for row in per_seed])
            rows.append(
                {
                    "weak": pair.weak,
                    "strong": pair.strong,
                    "method": method,
                    "weak_accuracy": weak_acc,
                    "strong_accuracy": strong_acc,
                    "student_accuracy": student_acc,
                    "pgr": pgr(weak_acc, strong_acc, student_acc, min_gap),
                    "agreement_with_weak": _mean([row["agreement_with_weak"] for row in per_seed]),
                    "per_seed": per_seed,
                }
            )
    return {
        "recipe": recipe.name,
        "n_test": n_test,
        "seeds": list(recipe.seeds),
        "pgr_min_gap": min_gap,
        "models": out_models,
        "pgr": rows,
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def _model_label(info: dict[str, Any]) -> str:
    if info["role"] == "ceiling":
        return f"{info['rung']} (ground truth)"
    return f"{info['rung']} <- {info['weak']} ({info['method']})"


def _accuracy_rows(metrics: dict[str, Any]) -> list[tuple[str, float, int]]:
    """(model, mean accuracy over seeds, number of seeds), in training order."""
    groups: dict[str, list[float]] = {}
    for info in metrics["models"].values():
        groups.setdefault(_model_label(info), []).append(info["accuracy"])
    return [(label, _mean(values), len(values)) for label, values in groups.items()]


def render_console(metrics: dict[str, Any]) -> str:
    """The results table printed at the end of a run."""
    lines = [f"\n{metrics['recipe']}: test accuracy over {len(metrics['seeds'])} seed(s), {metrics['n_test']} pairs"]
    width = max(len(label) for label, _, _ in _accuracy_rows(metrics)) + 2
    for label, acc, _ in _accuracy_rows(metrics):
        lines.append(f"  {label:<{width}} {acc:.3f}")
    lines.append("")
    header = f"  {'weak -> strong':<30} {'method':<8} {'weak':>6} {'strong':>7} {'student':>8} {'PGR':>10}"
    lines.append(header)
    for row in metrics["pgr"]:
        pair = f"{row['weak']} -> {row['strong']}"
        lines.append(
            f"  {pair:<30} {row['method']:<8} {row['weak_accuracy']:>6.3f} {row['strong_accuracy']:>7.3f} "
            f"{row['student_accuracy']:>8.3f} {_fmt(row['pgr'], 2):>10}"
        )
    return "\n".join(lines)


def render_markdown(metrics: dict[str, Any]) -> str:
    """The run's `report.md`."""
    lines = [
        f"# {metrics['recipe']}",
        "",
        f"Test split: {metrics['n_test']} pairs. Seeds: {metrics['seeds']}. Accuracies are means over seeds. PGR is "
        f"computed from the mean accuracies and is undefined when the strong ceiling is not above the weak model by "
        f"at least {metrics['pgr_min_gap']:.4f} (one test pair).",
        "",
        "## Accuracy",
        "",
        "| model | accuracy | seeds |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {label} | {acc:.3f} | {n} |" for label, acc, n in _accuracy_rows(metrics)]
    lines += [
        "",
        "## Performance gap recovered",
        "",
        "| weak -> strong | method | weak | strong ceiling | student | PGR | PGR per seed | agrees with weak |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in metrics["pgr"]:
        per_seed = ", ".join(_fmt(item["pgr"], 2) for item in row["per_seed"])
        lines.append(
            f"| {row['weak']} -> {row['strong']} | {row['method']} | {row['weak_accuracy']:.3f} | "
            f"{row['strong_accuracy']:.3f} | {row['student_accuracy']:.3f} | {_fmt(row['pgr'], 3)} | {per_seed} | "
            f"{row['agreement_with_weak']:.3f} |"
        )
    kinds = sorted({kind for info in metrics["models"].values() for kind in info["accuracy_by_kind"]})
    if kinds:
        lines += ["", "## Accuracy by kind of pair (seed means)", ""]
        lines.append("| model | " + " | ".join(kinds) + " |")
        lines.append("| --- |" + " --- |" * len(kinds))
        groups: dict[str, list[dict[str, float]]] = {}
        for info in metrics["models"].values():
            groups.setdefault(_model_label(info), []).append(info["accuracy_by_kind"])
        for label, values in groups.items():
            cells = " | ".join(f"{_mean([v.get(kind, float('nan')) for v in values]):.3f}" for kind in kinds)
            lines.append(f"| {label} | {cells} |")
    lines += ["", f"Wall time of this invocation: {metrics.get('wall_seconds', 'n/a')} s.", ""]
    return "\n".join(lines)


def analyze_run(run_dir: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Recompute `metrics.json` and `report.md` of a finished run from its saved predictions (no retraining).

    Raises:
        W2SInputError: the directory is not a finished run, or a model's predictions are missing or misaligned.
    """
    from ..recipe import recipe_from_dict

    run_dir = Path(run_dir)
    config, metrics_file = run_dir / "config.yaml", run_dir / "metrics.json"
    if not config.is_file() or not metrics_file.is_file():
        raise W2SInputError(f"{run_dir}: not a finished run directory (needs config.yaml and metrics.json)")
    recipe = recipe_from_dict(yaml.safe_load(config.read_text()), source=str(config))
    keep = ("role", "rung", "seed", "weak", "method", "train_seconds")
    models = {
        key: {name: info[name] for name in keep if name in info}
        for key, info in json.loads(metrics_file.read_text())["models"].items()
    }
    predictions = {}
    for key in models:
        path = run_dir / "predictions" / f"{key}.parquet"
        if not path.is_file():
            raise W2SInputError(f"{run_dir}: the predictions of model {key!r} are missing ({path})")
        predictions[key] = Dataset.from_parquet(str(path))
    try:
        metrics = build_metrics(recipe, models, predictions)
    except ValueError as error:
        raise W2SInputError(f"{run_dir}: {error}") from None
    atomic_write_json(metrics_file, metrics)
    atomic_write_text(run_dir / "report.md", render_markdown(metrics))
    log(render_console(metrics))
    return metrics
