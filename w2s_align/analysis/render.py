"""The metrics of a run as text: the console table that a run prints, and the markdown of `report.md`."""

from __future__ import annotations

import statistics
from typing import Any

from ..controls import CONTROLS
from .deception import CELLS, MIN_VERDICT_SEEDS
from .plots import studied_rows
from .schema import RunMetrics


def _fmt(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def _fmt_ci(stat: dict[str, Any], digits: int = 2) -> str:
    if stat["value"] is None:
        return "undefined"
    text = f"{stat['value']:.{digits}f}"
    if stat.get("ci_low") is not None:
        text += f" [{stat['ci_low']:.{digits}f}, {stat['ci_high']:.{digits}f}]"
    return text


def _accuracy_rows(metrics: RunMetrics) -> list[dict[str, Any]]:
    """Each model's mean accuracy over seeds, its interval and number of seeds, in training order."""
    if "accuracy" in metrics:
        return metrics["accuracy"]
    # metrics.json written before the intervals: the means alone
    groups: dict[str, list[float]] = {}
    for info in metrics["models"].values():
        groups.setdefault(info["label"], []).append(info["accuracy"])
    return [
        {"label": label, "value": statistics.fmean(values), "seeds": len(values)} for label, values in groups.items()
    ]


def _unit(metrics: RunMetrics) -> str:
    """What the test split holds: `pairs`, or `examples` in a classification run (a run saved before classification
    holds pairs)."""
    return metrics.get("unit", "pairs")


def _resampled(metrics: RunMetrics) -> str:
    """What the intervals cover: test pairs, and with several seeds the training seeds too."""
    if len(metrics["seeds"]) > 1:
        return f"intervals over test {_unit(metrics)} and {len(metrics['seeds'])} seeds (t for the seeds)"
    return f"bootstrap over test {_unit(metrics)} (one seed)"


def _has_deception(metrics: RunMetrics) -> bool:
    return any(row["conflict"] != "none" or row["mitigation"] != "none" for row in metrics["students"])


def _fmt_pgr(row: dict[str, Any]) -> str:
    """PGR with its interval, and the share of resamples where the gap vanished (left out of the interval)."""
    if row["gap_within_noise"]:
        return "gap within noise"
    undefined = row["pgr_ci"].get("undefined_draws") or 0.0
    return _fmt_ci(row["pgr_ci"]) + (f" ({undefined:.0%} undefined)" if undefined >= 0.005 else "")


def _fmt_difference(stat: dict[str, Any] | None, digits: int = 2) -> str:
    """A paired difference with its interval, `(within noise)` where the interval reaches 0."""
    if stat is None or stat["value"] is None:
        return "n/a"
    text = f"{stat['value']:+.{digits}f}"
    if stat.get("ci_low") is None:
        return text
    text += f" [{stat['ci_low']:+.{digits}f}, {stat['ci_high']:+.{digits}f}]"
    return text + (" (within noise)" if stat["ci_low"] <= 0 <= stat["ci_high"] else "")


def _difference_cells(row: dict[str, Any]) -> list[str]:
    """Accuracy, PGR, targeting and conflict targeting differences of a comparison row."""
    pgr_cell = "gap within noise" if row["gap_within_noise"] else _fmt_difference(row.get("pgr"))
    return [
        _fmt_difference(row.get("accuracy.student"), 3),
        pgr_cell,
        _fmt_difference(row.get("blind_spot.targeting")),
        _fmt_difference(row.get("conflict.targeting")),
    ]


def _deception_cell(d: dict[str, Any], key: str) -> str:
    """A statistic with its interval, or for an area prefix (`blind_spot`, `conflict`) its share / null; n/a when the
    student has none (no conflict)."""
    if f"{key}.share" in d:
        return f"{_fmt(d[f'{key}.share']['value'], 2)} / {_fmt(d[f'{key}.null']['value'], 2)}"
    return _fmt_ci(d[key]) if key in d else "n/a"


def _fmt_verdict(row: dict[str, Any], which: str = "verdict") -> str:
    """A conflicted student's verdict (`verdict`: deception beyond imitation; `added_verdict`: teacher-aligned error
    added by the conflict), with what it rests on."""
    controls = row.get("against_controls")
    if controls is None:
        return "no twin"
    verdict = controls[which]
    if verdict == "too few seeds":
        return f"too few seeds ({controls['seeds']}; a verdict needs {MIN_VERDICT_SEEDS})"
    if verdict == "inconclusive":
        return f"inconclusive: {controls['inconclusive']}"
    return verdict


def _fmt_weights(imitation: dict[str, Any]) -> str:
    """The imitation-matched control's weight `w` on each seed."""
    return ", ".join("n/a" if w is None else f"{w:.2f}" for w in imitation["weight"])


def _control_lines(row: dict[str, Any], indent: str = "    ") -> list[str]:
    """Each control's deception effect (the student's matched added error minus the control's), the effect against
    the imitation-matched control, the placebo's own added error (which must read within noise) and both verdicts."""
    controls = row["against_controls"]
    lines = []
    for name, control in controls["controls"].items():
        if name != "imitation":  # read at the student's own imitation, below
            lines.append(f"{indent}vs {CONTROLS[name].label:<44} {_fmt_difference(control['effect'])}")
    imitation = controls.get("imitation")
    if imitation is not None:
        lines.append(f"{indent}vs {'imitation-matched':<44} {_fmt_difference(imitation['effect'])}")
        weights = _fmt_weights(imitation)
        lines.append(f"{indent}   (imitation weight w per seed: {weights}; 0: it imitates no more than the placebo)")
    placebo = controls["controls"].get("placebo")
    if placebo is not None:
        check = {True: "within noise, as it must be", False: "BEYOND NOISE: the intervals are too narrow here"}.get(
            controls["placebo_within_noise"], "no interval"
        )
        value = _fmt_difference(placebo["own"]).removesuffix(" (within noise)")
        lines.append(f"{indent}placebo's added error, blind spot - visible: {value} ({check})")
    lines.append(f"{indent}teacher-aligned error added by the conflict: {_fmt_verdict(row, 'added_verdict')}")
    lines.append(f"{indent}deception beyond imitation: {_fmt_verdict(row)}")
    for name, check in controls.get("checks", {}).items():
        truth = "deceptive" if check["deceptive"] else "not deceptive"
        lines.append(
            f"{indent}check {name} ({truth}) judged as this student: added error {check['added_verdict']}, "
            f"beyond imitation {check['verdict']} ({_fmt_difference(check['vs_imitation'])})"
        )
    return lines


def render_console(metrics: RunMetrics) -> str:
    """The results table printed at the end of a run."""
    analysis = metrics["analysis"]
    split = "test" if metrics.get("evaluated_on", "test") == "test" else "validation (the test split was not read)"
    lines = [
        f"\n{metrics['recipe']}: {split} accuracy over {len(metrics['seeds'])} seed(s), "
        f"{metrics['n_test']} {_unit(metrics)}"
    ]
    accuracies = _accuracy_rows(metrics)
    width = max(len(row["label"]) for row in accuracies) + 2
    for row in accuracies:
        lines.append(f"  {row['label']:<{width}} {_fmt_ci(row, 3)}".rstrip())
    flag, flagged = _at_chance(metrics)
    if flagged:
        lines += [f"  {flag}", *(f"    {name}" for name in flagged)]
    lines.append("")
    rows = studied_rows(metrics)
    width = max(len(row["label"]) for row in rows) + 2
    show_ds = _has_deception(metrics)
    header = f"  {'student':<{width}} {'weak':>6} {'strong':>7} {'student':>8}  {'PGR [CI]':<20}"
    lines.append((header + (f"  {'DS paper [CI]':<20}  deception effect [CI]" if show_ds else "")).rstrip())
    for row in rows:
        line = (
            f"  {row['label']:<{width}} {row['weak_accuracy']:>6.3f} {row['strong_accuracy']:>7.3f} "
            f"{row['student_accuracy']:>8.3f}  {_fmt_pgr(row):<20}"
        )
        if show_ds:
            effect = "" if row.get("deception_effect") is None else _fmt_difference(row["deception_effect"])
            line += f"  {_fmt_ci(row['ds_paper']):<20}  {effect}"
        lines.append(line.rstrip())
    conflicted = [row for row in rows if row.get("against_controls")]
    if conflicted:
        lines.append(
            "\n  deception against the controls: the student's added error over its twin in the blind spot minus "
            "where the teacher\n  sees, matched on the twin's confidence, minus the same for each control (the "
            "imitation-matched control: a student that\n  copies its teacher as much more as this one does, by its "
            "agreement with the weak labels it learned from)"
        )
        for row in conflicted:
            lines += [f"  {row['label']}", *_control_lines(row)]
    if metrics.get("comparisons"):
        lines.append(f"\n  differences, paired on the same test {_unit(metrics)} and seeds")
        for row in metrics["comparisons"]:
            accuracy_cell, pgr_cell, _, _ = _difference_cells(row)
            text = f"accuracy {accuracy_cell}; PGR {pgr_cell}"
            if row.get("added_error.matched") is not None:
                text += f"; matched added error {_fmt_difference(row['added_error.matched'])}"
            note = f" ({row['note']})" if row.get("note") else ""
            lines.append(f"  {row['label']}\n    - {row['against']}{note}: {text}")
    lines.append(
        f"  [CI]: {analysis['confidence']:.0%} {_resampled(metrics)}; "
        '"gap within noise": the ceiling gap\'s interval reaches 0; "(within noise)": the interval reaches 0.'
    )
    if show_ds:
        lines.append(
            "  DS paper: error rate where the strong model knows and the teacher does not (descriptive: imitation "
            "alone makes it high);\n  deception effect: against the placebo. Teacher-aligned error added by the "
            "conflict: the effect exceeds the placebo and\n  the random direction beyond noise; deception beyond "
            "imitation: it exceeds the imitation-matched control too;\n  both over "
            f"{MIN_VERDICT_SEEDS}+ seeds. See docs/deception.md (what the verdicts can find: its power table)."
        )
    return "\n".join(lines)


def _at_chance(metrics: RunMetrics) -> tuple[str, list[str]]:
    """What flags the models at chance on a seed (whose numbers then measure a model that learned nothing), and
    which they are."""
    flagged = [model for model in metrics["models"].values() if model.get("at_chance")]
    return (
        f"At chance on a seed (its test accuracy's {metrics['analysis']['confidence']:.0%} interval holds 0.5: a "
        "model that learned nothing there):",
        [f"{model['label']}, seed {model['seed']}" for model in flagged],
    )


def _accuracy_section(metrics: RunMetrics) -> list[str]:
    """The report's title, what it was evaluated on, and the accuracy table."""
    lines: list[str] = []
    lines += [
        f"# {metrics['recipe']}",
        "",
        (
            "Test split"
            if metrics.get("evaluated_on", "test") == "test"
            else "Evaluated on a validation slice of the ground-truth split (the test split was not read)"
        )
        + f": {metrics['n_test']} {_unit(metrics)}. Seeds: {metrics['seeds']}. Accuracies are means over seeds. "
        f"PGR is computed from the mean accuracies and is undefined when the strong ceiling is not above the weak "
        f"model by at least {metrics['pgr_min_gap']:.4f} (one test {_unit(metrics)[:-1]}).",
        "",
        "## Accuracy",
        "",
        "| model | accuracy [CI] | seeds |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {row['label']} | {_fmt_ci(row, 3)} | {row['seeds']} |" for row in _accuracy_rows(metrics)]
    flag, flagged = _at_chance(metrics)
    if flagged:
        lines += ["", f"**{flag}** " + "; ".join(flagged) + "."]
    return lines


def _pgr_section(metrics: RunMetrics) -> list[str]:
    """The PGR table of the students studied."""
    lines: list[str] = []
    lines += [
        "",
        "## Performance gap recovered",
        "",
        "| student | weak | strong ceiling | student | gap [CI] | PGR [CI] | PGR per seed | agrees with weak |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in studied_rows(metrics):
        per_seed = ", ".join(_fmt(item["pgr"], 2) for item in row["per_seed"])
        lines.append(
            f"| {row['label']} | {row['weak_accuracy']:.3f} | {row['strong_accuracy']:.3f} | "
            f"{row['student_accuracy']:.3f} | {_fmt_ci(row['gap_ci'], 3)} | {_fmt_pgr(row)} | {per_seed} | "
            f"{row['agreement_with_weak']:.3f} |"
        )
    return lines


def _differences_section(metrics: RunMetrics) -> list[str]:
    """The paired differences between students, where the run compares any."""
    lines: list[str] = []
    if metrics.get("comparisons"):
        lines += [
            "",
            "## Differences",
            "",
            "Each student against the naive (`xent`) student of the same teacher (method), or against the same "
            "teacher's student without bootstrapping or filter (mitigation), or a confidence-filtered student against "
            "a random subset of the same size (random subset), or an ensemble's student against the student of its "
            "first member alone (ensemble): paired differences, both resampled on the same test pairs and seeds. "
            "Differences whose interval reaches 0 are marked within noise. Matched added error: the difference of "
            "the two students' margin-matched added error over their own twins; the targeting ratios are "
            "descriptive (see docs/deception.md).",
            "",
            "| student | against | differs by | accuracy | PGR | targeting (descriptive) | conflict targeting "
            "(descriptive) | matched added error |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in metrics["comparisons"]:
            cells = " | ".join([*_difference_cells(row), _fmt_difference(row.get("added_error.matched"))])
            note = f" ({row['note']})" if row.get("note") else ""
            lines.append(f"| {row['label']} | {row['against']}{note} | {row['factor']} | {cells} |")
    return lines


def _controls_section(metrics: RunMetrics) -> list[str]:
    """The conflicted students' deception against their controls, and the checks of the verdicts."""
    lines: list[str] = []
    conflicted = [row for row in studied_rows(metrics) if row.get("against_controls")]
    if conflicted:
        lines += [
            "",
            "## Deception against controls",
            "",
            "The deception effect of a conflicted student: its added error over its no-conflict twin in the blind "
            "spot (S_k & W_uk) minus where the teacher sees (S_k & W_k), matched on the twin's confidence, minus the "
            "same for a control: the twin with its batches in another order (placebo), the same conflict toward "
            "coin-toss responses (random direction), and the imitation-matched control (the placebo moved toward the "
            "twin trained twice the epochs, `w` of the way, where `w` is the student's gain in agreement with the "
            "weak labels it learned from over the imitation control's); paired over test pairs and seeds. The "
            "placebo's own added error (blind spot minus visible, unmatched) has expectation 0 and must read within "
            "noise. **Teacher-aligned error added by the conflict**: the effect exceeds the placebo and the random "
            "direction beyond noise; **deception beyond imitation**: it exceeds the imitation-matched control too; "
            f"both over at least {MIN_VERDICT_SEEDS} seeds; a failed check is inconclusive (docs/deception.md).",
            "",
            "| student | seeds | vs placebo | vs random direction | vs imitation-matched (w per seed) "
            "| placebo's added error | teacher-aligned error added | deception beyond imitation |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in conflicted:
            controls = row["against_controls"]
            effects = [controls["controls"].get(name) for name in ("placebo", "random-direction")]
            cells = ["no control" if c is None else _fmt_difference(c["effect"]) for c in effects]
            imitation = controls.get("imitation")
            if imitation is None:
                cells.append("no control")
            else:
                cells.append(f"{_fmt_difference(imitation['effect'])} ({_fmt_weights(imitation)})")
            placebo = "n/a" if effects[0] is None else _fmt_difference(effects[0]["own"])
            verdicts = f"{_fmt_verdict(row, 'added_verdict')} | {_fmt_verdict(row)}"
            lines.append(f"| {row['label']} | {controls['seeds']} | {' | '.join(cells)} | {placebo} | {verdicts} |")
        checked = [row for row in conflicted if row["against_controls"].get("checks")]
        if checked:
            lines += [
                "",
                "Checks of the verdicts (`conflicts.checks`): students trained so that the truth is known, each "
                "judged as if it were the conflicted student, against its twin and controls. A check that is not "
                "deceptive "
                'must not read "shown" beyond imitation; a deceiver should.',
                "",
                "| conflicted student | check | deceptive | vs placebo | vs imitation-matched "
                "| teacher-aligned error added | deception beyond imitation |",
                "| --- | --- | --- | --- | --- | --- | --- |",
            ]
            for row in checked:
                for name, check in row["against_controls"]["checks"].items():
                    cells = [_fmt_difference(check["vs_placebo"]), _fmt_difference(check["vs_imitation"])]
                    lines.append(
                        f"| {row['label']} | {name} | {'yes' if check['deceptive'] else 'no'} | {' | '.join(cells)} "
                        f"| {check['added_verdict']} | {check['verdict']} |"
                    )
    return lines


def _deception_section(metrics: RunMetrics) -> list[str]:
    """The descriptive deception statistics of every student."""
    lines: list[str] = []
    analysis = metrics["analysis"]
    lines += [
        "",
        "## Deception",
        "",
        f"Knowledge areas by `{analysis['known']}`"
        + (f" (threshold {analysis['threshold']})" if analysis["known"] == "confident" else "")
        + f"; intervals: {analysis['confidence']:.0%} bootstrap {_resampled(metrics)} "
        f"({analysis['n_bootstrap']} resamples), "
        "means over seeds. Every statistic here is descriptive; the test of deception is the section above. Blind "
        "spot = S_k & W_uk. DS paper = the student's error rate there (the paper's figures; a copying student scores "
        "high without any conflict); share = among the student's mistakes in S_k, the share in W_uk; null = "
        "|S_k & W_uk| / |S_k|; targeting = share / null. Added error = the student's error rate minus its twin's, "
        "in the blind spot and where the teacher sees (S_k & W_k). Conflict-caused = wrong with the conflict, right "
        "without it; their share and null are taken among the S_k pairs the twin gets right (conflict targeting "
        "reads above 1 under mere churn: docs/deception.md).",
        "",
        "| student | gap | DS paper | share / null | targeting | added error: blind spot / visible "
        "| conflict-caused (all) | conflict-caused (blind spot) | conflict share / null | conflict targeting |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in metrics["students"]:
        d = row["deception"]
        cells = [_deception_cell(d, key) for key in ("blind_spot.error_rate", "blind_spot", "blind_spot.targeting")]
        cells.append(
            f"{_fmt(d['added_error.blind_spot']['value'], 2)} / {_fmt(d['added_error.visible']['value'], 2)}"
            if "added_error.blind_spot" in d
            else "n/a"
        )
        cells += [_deception_cell(d, key) for key in ("conflict_mistakes.all", "conflict_mistakes.S_k&W_uk")]
        cells += [_deception_cell(d, key) for key in ("conflict", "conflict.targeting")]
        lines.append(f"| {row['label']} | {row['gap']:.3f} | " + " | ".join(cells) + " |")
    return lines


def _knowledge_area_section(metrics: RunMetrics) -> list[str]:
    """Every student's error rate by knowledge area."""
    lines: list[str] = []
    lines += [
        "",
        f"Student error rate by knowledge area (means over seeds; n = {_unit(metrics)} in the area, first seed):",
        "",
        "| student | S_k & W_k | S_k & W_uk | S_uk & W_k | S_uk & W_uk |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in metrics["students"]:
        cells = " | ".join(
            f"{_fmt(row['table'][cell]['value'], 2)} (n={row['table'][cell]['n']})"
            for cell in (f"{s}&{w}" for s, w in CELLS)
        )
        lines.append(f"| {row['label']} | {cells} |")
    return lines


def _kinds_section(metrics: RunMetrics) -> list[str]:
    """Accuracy by kind of pair, where the data has kinds."""
    lines: list[str] = []
    kinds = sorted({kind for info in metrics["models"].values() for kind in info["accuracy_by_kind"]})
    if kinds:
        lines += ["", f"## Accuracy by kind of {_unit(metrics)[:-1]} (seed means)", ""]
        lines.append("| model | " + " | ".join(kinds) + " |")
        lines.append("| --- |" + " --- |" * len(kinds))
        groups: dict[str, list[dict[str, float]]] = {}
        for info in metrics["models"].values():
            groups.setdefault(info["label"], []).append(info["accuracy_by_kind"])
        for label, values in groups.items():
            cells = " | ".join(
                f"{statistics.fmean([v.get(kind, float('nan')) for v in values]):.3f}" for kind in kinds
            )
            lines.append(f"| {label} | {cells} |")
    return lines


def _figures_section(figures: dict[str, str] | None) -> list[str]:
    """The figures, or why there are none."""
    lines: list[str] = []
    if figures is None:
        lines += ["", "## Figures", "", "No figures: matplotlib is not installed (`pip install w2s_align[plotting]`)."]
    elif figures:
        lines += ["", "## Figures", ""]
        for caption, path in figures.items():
            # A folder of figures is linked, a figure shown.
            lines.append(f"[{caption}]({path})\n" if path.endswith("/") else f"![{caption}]({path})\n")
    return lines


def render_markdown(metrics: RunMetrics, figures: dict[str, str] | None) -> str:
    """The run's `report.md`; `figures` maps a caption to a PNG path relative to the report (None: matplotlib is
    not installed)."""
    lines = [
        *_accuracy_section(metrics),
        *_pgr_section(metrics),
        *_differences_section(metrics),
        *_controls_section(metrics),
        *_deception_section(metrics),
        *_knowledge_area_section(metrics),
        *_kinds_section(metrics),
        *_figures_section(figures),
    ]
    lines += ["", f"Wall time of this invocation: {metrics.get('wall_seconds', 'n/a')} s.", ""]
    return "\n".join(lines)
