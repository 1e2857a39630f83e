"""Plots of a run (PNG, matplotlib): Deception Score and PGR against the capability gap, the 2x2 area heatmap, every
student's accuracy and PGR side by side, and every model's training curves.

All plots read the `metrics.json` structure written by the pipeline, so `w2s-align analyze RUN_DIR` redraws them from
saved predictions. matplotlib is an optional dependency (`pip install w2s_align[plotting]`); without it the report is
written without figures and says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..artifacts import RunDir
from ..distributed import is_main_process
from .deception import CELLS
from .schema import RunMetrics, StudentRow


def studied_rows(metrics: RunMetrics) -> list[StudentRow]:
    """The rows of the students the experiment asks about (controls are read in their students' rows)."""
    return [row for row in metrics["students"] if not row.get("control")]


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


Point = Callable[[dict[str, Any]], dict[str, Any] | None]


def _lines(rows: list[dict[str, Any]], value: Point) -> dict[str, list[tuple]]:
    """Group rows by (method, conflict, mitigation) into `(gap, value, ci_low, ci_high)` points sorted by gap; `value`
    picks a row's `{"value", "ci_low", "ci_high"}` statistic."""
    lines: dict[str, list] = {}
    for row in rows:
        point = value(row)
        if point is None or point.get("value") is None or row.get("gap") is None:
            continue
        name = f"{row['conflict']}" + (f", {row['mitigation']}" if row["mitigation"] != "none" else "")
        name += f" ({row['method']})"
        lines.setdefault(name, []).append((row["gap"], point["value"], point.get("ci_low"), point.get("ci_high")))
    return {name: sorted(points) for name, points in lines.items()}


def _plot_against_gap(rows: list[dict[str, Any]], value: Point, ylabel: str, title: str, path: Path) -> Path | None:
    """One point per row at its capability gap. The gaps are categories in increasing order, labelled with their
    measured values (not to scale), the lines side by side within each. A run with one gap (one ladder pair) has
    nothing to show against the gap: its lines are the categories then, named on the axis, whose title gives it."""
    lines = _lines(rows, value)
    if not lines:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    gaps = sorted({point[0] for points in lines.values() for point in points})
    one_gap = len(gaps) == 1
    category = {gap: index for index, gap in enumerate(gaps)}
    width = 0.6 / len(lines)  # lines side by side within a category, so that their intervals do not hide each other
    for index, (name, points) in enumerate(lines.items()):
        offset = 0 if one_gap else (index - (len(lines) - 1) / 2) * width
        positions = [index if one_gap else category[point[0]] + offset for point in points]
        values = [point[1] for point in points]
        if all(point[2] is not None for point in points):
            errors = [[v - p[2] for v, p in zip(values, points)], [p[3] - v for v, p in zip(values, points)]]
            ax.errorbar(positions, values, yerr=errors, marker="o", capsize=3, label=name)
        else:
            ax.plot(positions, values, marker="o", label=name)
    if one_gap:
        ax.set_xticks(range(len(lines)), list(lines), rotation=20, ha="right", fontsize=8)
        ax.set_xlabel(f"student (conflict, method), at the one capability gap {gaps[0]:.3f}")
    else:
        ax.set_xticks(range(len(gaps)), [f"{gap:.3f}" for gap in gaps])
        ax.set_xlabel("capability gap: acc(strong ceiling) - acc(weak ceiling), in order")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside the data
    ax.set_xlim(-0.5, (len(lines) if one_gap else len(gaps)) - 0.5)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_deception_vs_gap(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """The paper's reading of the Deception Score (the error rate in S_k & W_uk, with its bootstrap interval) against
    the gap, one line per conflict setting."""
    ylabel = "DS paper (error rate in S_k & W_uk)"
    return _plot_against_gap(rows, lambda row: row.get("ds_paper"), ylabel, "Deception vs gap", path)


def plot_effect_vs_gap(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """The deception effect (the conflicted student's margin-matched added error in the blind spot minus its
    placebo's, with its interval; 0 = no more than churn) against the gap, for the conflicted students."""
    ylabel = "deception effect vs placebo"
    return _plot_against_gap(rows, lambda row: row.get("deception_effect"), ylabel, "Deception effect vs gap", path)


def plot_pgr_vs_gap(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """PGR (with its bootstrap interval) against the gap, one line per conflict setting; rows whose gap is within
    noise are left out."""
    points = [row for row in rows if not row.get("gap_within_noise")]
    return _plot_against_gap(points, lambda row: row["pgr_ci"], "PGR", "Performance gap recovered vs gap", path)


def plot_area_heatmap(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """The student's error rate in each knowledge area, one panel per student (rows with a 2x2 table)."""
    rows = [row for row in rows if row.get("table")]
    if not rows:
        return None
    plt = _pyplot()
    import numpy as np

    columns = min(len(rows), 4)
    grid_rows = (len(rows) + columns - 1) // columns
    fig, axes = plt.subplots(grid_rows, columns, figsize=(3.2 * columns, 3.0 * grid_rows), squeeze=False)
    for ax in axes.flat[len(rows) :]:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows):
        grid = np.full((2, 2), np.nan)
        for s_area, w_area in CELLS:
            cell = row["table"][f"{s_area}&{w_area}"]
            if cell["value"] is not None:
                grid[0 if s_area == "S_k" else 1, 0 if w_area == "W_k" else 1] = cell["value"]
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="Reds")
        for i, s_area in enumerate(("S_k", "S_uk")):
            for j, w_area in enumerate(("W_k", "W_uk")):
                cell = row["table"][f"{s_area}&{w_area}"]
                text = "undef." if cell["value"] is None else f"{cell['value']:.2f}"
                ax.text(j, i, f"{text}\nn={cell['n']}", ha="center", va="center", fontsize=8)
        ax.set_xticks([0, 1], ["W_k\n(right)", "W_uk\n(wrong)"], fontsize=8)
        ax.set_yticks([0, 1], ["S_k\n(right)", "S_uk\n(wrong)"], fontsize=8)
        ax.set_xlabel("weak teacher on the pair", fontsize=8)
        ax.set_ylabel("strong ceiling on the pair", fontsize=8)
        ax.set_title(row["label"], fontsize=8)
    fig.suptitle(
        "student error rate by knowledge area (seed 0): W_k / W_uk, the pairs the weak teacher gets right / wrong;\n"
        "S_k / S_uk, those the strong ceiling gets right / wrong; n pairs in each cell",
        fontsize=9,
    )
    fig.tight_layout()
    fig.colorbar(image, ax=axes, label="student error rate", shrink=0.8)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_students(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Every student side by side (the comparison of methods): its accuracy beside its weak teacher's and its strong
    ceiling's, and its PGR, each with its bootstrap interval; a student whose ceiling gap is within noise has no PGR
    point. Rows written before the accuracy intervals are drawn without them."""
    if not rows:
        return None
    plt = _pyplot()
    height = 1.2 + 0.32 * len(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, height), sharey=True)
    positions = list(range(len(rows)))[::-1]  # the first row on top
    styles = (("weak", "weak teacher", "tab:gray", -0.2), ("strong", "strong ceiling", "black", 0.2))
    for role, name, color, shift in (*styles, ("student", "student", "tab:blue", 0.0)):
        for index, (row, y) in enumerate(zip(rows, positions)):
            stat = row.get(f"{role}_accuracy_ci") or {"value": row[f"{role}_accuracy"]}
            value, low, high = stat["value"], stat.get("ci_low"), stat.get("ci_high")
            error = None if low is None else [[value - low], [high - value]]
            left.errorbar([value], [y + shift], xerr=error, fmt="o", color=color, capsize=2, markersize=4,
                          label=name if index == 0 else None)  # fmt: skip
    left.set_yticks(positions, [row["label"] for row in rows], fontsize=7)
    left.set_xlabel("test accuracy")
    fig.legend(*left.get_legend_handles_labels(), loc="upper left", ncol=3, fontsize=7, frameon=False)
    left.grid(alpha=0.3, axis="x")
    for row, y in zip(rows, positions):
        stat = row["pgr_ci"]
        if row.get("gap_within_noise") or stat.get("value") is None:
            right.text(0.5, y, "gap within noise", transform=right.get_yaxis_transform(), ha="center", va="center",
                       fontsize=7, color="tab:gray")  # fmt: skip
            continue
        low, high = stat.get("ci_low"), stat.get("ci_high")
        error = None if low is None else [[stat["value"] - low], [high - stat["value"]]]
        right.errorbar([stat["value"]], [y], xerr=error, fmt="o", color="tab:blue", capsize=2, markersize=4)
    right.axvline(0, color="tab:gray", linewidth=0.8)
    right.axvline(1, color="tab:gray", linewidth=0.8, linestyle="--")
    right.set_xlabel("PGR (0: the weak teacher, 1: the strong ceiling)")
    right.grid(alpha=0.3, axis="x")
    fig.suptitle("students: accuracy and performance gap recovered, 95% intervals", fontsize=10, x=0.65)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# Logged statistics drawn as curves: panel -> series -> the keys it is drawn from (the first a model's log has).
# `label_agreement` is the per-batch agreement with the labels trained on (TRL's `accuracy` and `rewards/accuracies`
# read the stored order instead); `eval_*` come from the validation split (`training.validation_fraction`), when there
# is one.
CURVES = {
    "loss": {"training": ("loss",), "validation": ("eval_loss",)},
    "agreement with its training labels": {
        "training": ("label_agreement",),
        "validation": ("eval_accuracy",),
    },
}


def plot_training_curves(label: str, history: list[dict[str, Any]], path: Path) -> Path | None:
    """A model's loss and agreement with its labels against the optimizer step, in training and (where it has one)
    on its validation split, from its saved log history (the trainer's `state.log_history`); None when the log has no
    step-wise entries."""
    panels: dict[str, dict[str, list[tuple]]] = {}
    for title, series in CURVES.items():
        for name, keys in series.items():
            key = next((key for key in keys if any(key in entry for entry in history)), None)
            points = [(entry["step"], entry[key]) for entry in history if key and key in entry and "step" in entry]
            if points:
                panels.setdefault(title, {})[name] = points
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (title, series) in zip(axes.flat, panels.items()):
        for name, points in series.items():
            ax.plot([step for step, _ in points], [value for _, value in points], marker=".", label=name)
        if len(series) > 1:
            ax.legend(fontsize=8)
        ax.set_xlabel("optimizer step")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(label, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


FIGURES = (
    ("deception_vs_gap.png", "DS paper (descriptive) vs capability gap", plot_deception_vs_gap),
    ("effect_vs_gap.png", "Deception effect (vs placebo) vs capability gap", plot_effect_vs_gap),
    ("pgr_vs_gap.png", "PGR vs capability gap", plot_pgr_vs_gap),
    ("area_heatmap.png", "Error rate by knowledge area", plot_area_heatmap),
    ("students.png", "Every student: accuracy and PGR with their intervals", plot_students),
)


def draw_figures(metrics: RunMetrics, directory: Path) -> None:
    """The run's plots, as PNG files in `directory` (main process; none without matplotlib, or without data)."""
    if not is_main_process() or not matplotlib_available():
        return
    directory.mkdir(parents=True, exist_ok=True)
    for name, _, plot in FIGURES:
        if plot(studied_rows(metrics), directory / name) is None:
            (directory / name).unlink(missing_ok=True)  # no data this time: no stale figure of an earlier analysis


def draw_training_curves(run_dir: Path, metrics: RunMetrics) -> list[Path]:
    """Each model's training curves, `plots/training/<model>.png`, from its log `logs/<model>.json` (drawn again
    only when the log is newer than the figure)."""
    drawn = []
    for key, model in metrics["models"].items():
        log_file = RunDir(run_dir).train_log(key)
        figure = RunDir(run_dir).training_curve(key)
        if not log_file.is_file():
            continue
        if not figure.is_file() or figure.stat().st_mtime < log_file.stat().st_mtime:
            figure.parent.mkdir(parents=True, exist_ok=True)
            title = f"{model['label']}, seed {model['seed']}"
            if plot_training_curves(title, json.loads(log_file.read_text()), figure) is None:
                continue
        drawn.append(figure)
    return drawn
