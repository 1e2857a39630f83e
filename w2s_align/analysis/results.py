"""The metrics of a run, from its models' saved per-example predictions: the accuracy of every model, and the PGR and
deception statistics of every student, with their intervals and the comparisons with their controls.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

import numpy as np
from datasets import Dataset

from ..controls import check_of
from ..plan import Plan
from ..specs import StudentSpec
from ..tasks import REGISTRY
from ..training import TEACHER_COLUMN
from .deception import (
    DeceptionAnalyzer,
    compare_seeds,
    deception_against_controls,
    deception_statistics,
    pgr_statistics,
    training_agreement_gain,
)
from .intervals import pair_weights, ratio, seed_mean_intervals
from .metrics import accuracy, agreement, at_chance, pgr
from .schema import AccuracyRow, RunMetrics, StudentRow


def _by_kind(predictions: Dataset) -> dict[str, float]:
    if "kind" not in predictions.column_names:
        return {}
    kinds = np.asarray(predictions["kind"])
    correct = np.asarray(predictions["correct"])
    return {str(kind): float(correct[kinds == kind].mean()) for kind in sorted(set(kinds.tolist()))}


def build_metrics(
    plan: Plan,
    predictions: Mapping[str, Dataset],
    train_seconds: Mapping[str, float | None] | None = None,
    training: Mapping[str, Dataset] | None = None,
) -> RunMetrics:
    """Accuracy of every model of the plan; PGR, agreement and deception statistics of every student, per seed and
    over seeds.

    Args:
        plan: the run's [`Plan`]: its models, which ceilings and no-conflict twin each student is compared with, and
            the recipe's analysis settings.
        predictions: model key -> its per-example test predictions, all aligned on the same ids.
        train_seconds: model key -> training time, recorded with the model.
        training: model key -> a student's predictions on the split it learned from, with its teacher's labels
            (`train_predictions.parquet`), for the imitation-matched control of the deception verdicts.

    Raises:
        ValueError: the predictions of two models do not cover the same test pairs in the same order.
    """
    ids = None
    for key, frame in predictions.items():
        if ids is None:
            ids = list(frame["id"])
        elif list(frame["id"]) != ids:
            raise ValueError(f"the test examples of model {key!r} do not line up with the other models' (ids differ)")
    n_test = len(ids or [])
    min_gap = 1.0 / max(n_test, 1)
    recipe, analysis = plan.recipe, plan.recipe.analysis
    seconds = train_seconds or {}
    models = {
        spec.key: {
            **spec.info(),
            "label": spec.label,
            "train_seconds": seconds.get(spec.key),
            "accuracy": accuracy(predictions[spec.key]),
            "at_chance": at_chance(predictions[spec.key], analysis.confidence),
            "accuracy_by_kind": _by_kind(predictions[spec.key]),
        }
        for spec in plan.models
    }
    groups: dict[str, list[StudentSpec]] = {}  # one student over seeds
    for spec in plan.models:
        if isinstance(spec, StudentSpec):
            groups.setdefault(spec.name, []).append(spec)
    # PGR and the deception statistics as the `evaluate` modules users load compute them (w2s_align.evaluate_metrics
    # wraps these functions).
    bootstrap = {"n_bootstrap": analysis.n_bootstrap, "confidence": analysis.confidence, "min_gap": min_gap}
    rows = [
        _student_row(plan, predictions, models, specs, training or {}, min_gap, bootstrap) for specs in groups.values()
    ]
    comparisons = _comparisons(plan, predictions, groups, rows, min_gap)
    accuracies = _accuracy_rows(plan, predictions)
    return {
        "recipe": recipe.name,
        "evaluated_on": recipe.data.evaluate_on,
        "n_test": n_test,
        "unit": plan.data.unit,
        "seeds": list(recipe.seeds),
        "pgr_min_gap": min_gap,
        "analysis": {
            "weak_areas": analysis.weak_areas,
            "known": analysis.known,
            "threshold": analysis.threshold,
            "n_bootstrap": analysis.n_bootstrap,
            "confidence": analysis.confidence,
        },
        "models": models,
        "accuracy": accuracies,
        "students": rows,
        "comparisons": comparisons,
    }


def _per_seed(
    plan: Plan,
    predictions: Mapping[str, Dataset],
    models: dict[str, dict[str, Any]],
    specs: list[StudentSpec],
    min_gap: float,
) -> tuple[list[dict[str, Any]], dict[str, list]]:
    """A student's accuracies, PGR and agreement with its teacher on each seed, and the rows of the statistics over
    seeds (each model's `prob_chosen` on every test pair of every seed)."""
    n_test = len(predictions[specs[0].key]["id"])
    per_seed = []
    columns: dict[str, list] = {
        "predictions": [], "weak": [], "strong": [], "baseline": [], "training_seed": [], "weak_known": []
    }  # fmt: skip
    for spec in specs:
        # The weak model is the one that supervised (with `dpo.supervisor: reward`, a reward model).
        weak, strong = spec.chain[0], plan.ceiling(spec.strong, spec.seed)
        baseline = plan.baseline(spec)
        accuracies = {name: models[s.key]["accuracy"] for name, s in (("weak", weak), ("strong", strong))}
        accuracies["student"] = models[spec.key]["accuracy"]
        per_seed.append(
            {
                "seed": spec.seed,
                **accuracies,
                "pgr": pgr(accuracies["weak"], accuracies["strong"], accuracies["student"], min_gap),
                "agreement_with_weak": agreement(predictions[spec.key], predictions[weak.key]),
            }
        )
        for column, model in (("predictions", spec), ("weak", weak), ("strong", strong), ("baseline", baseline)):
            if model is not None:
                columns[column] += predictions[model.key]["prob_chosen"]
        columns["training_seed"] += [spec.seed] * n_test
        columns["weak_known"] += list(_weak_known(plan, weak, predictions))
    return per_seed, columns


def _student_row(
    plan: Plan,
    predictions: Mapping[str, Dataset],
    models: dict[str, dict[str, Any]],
    specs: list[StudentSpec],
    training: Mapping[str, Dataset],
    min_gap: float,
    bootstrap: dict[str, Any],
) -> StudentRow:
    """One student over its seeds (`specs`): accuracies, PGR and agreement per seed and over seeds with their
    intervals, its deception statistics, and against its controls where it is a conflicted student."""
    analysis = plan.recipe.analysis
    per_seed, columns = _per_seed(plan, predictions, models, specs, min_gap)
    prediction_columns = {key: columns[key] for key in ("predictions", "weak", "strong", "training_seed")}
    gap_and_pgr = pgr_statistics(**prediction_columns, **bootstrap)
    deception = deception_statistics(
        **prediction_columns,
        baseline=columns["baseline"] or None,
        weak_known=columns["weak_known"],
        known=analysis.known,
        threshold=analysis.threshold,
        **bootstrap,
    )
    # The headline of a conflicted student (a control is read in its student's row): its deception effect
    # against the controls, and what it says.
    studied = specs[0].conflict.kind != "none" and specs[0].control is None
    controls = _against_controls(plan, predictions, specs, training) if studied else None
    effect = None if controls is None else controls["controls"].get("placebo", {}).get("effect")
    # The seed means the accuracy table prints, so that a model's accuracy reads the same in every table
    # (another order of summation printed 0.6125 as 0.612 here and 0.613 there).
    weak_acc, strong_acc, student_acc = (
        gap_and_pgr[f"accuracy.{role}"]["value"] for role in ("weak", "strong", "student")
    )
    spec = specs[0]
    return {
        "label": spec.label,
        "weak": spec.weak,
        "via": list(spec.via),
        "strong": spec.strong,
        "method": spec.method,
        "conflict": spec.conflict.label,
        "label_filter": spec.label_filter.label,
        "mitigation": spec.mitigation,
        "control": spec.control,
        "weak_accuracy": weak_acc,
        "strong_accuracy": strong_acc,
        "student_accuracy": student_acc,
        **{f"{role}_accuracy_ci": gap_and_pgr[f"accuracy.{role}"] for role in ("weak", "strong", "student")},
        "gap": strong_acc - weak_acc,
        "gap_ci": gap_and_pgr["gap"],
        # A gap whose interval reaches 0 cannot be divided by: reports print "gap within noise" instead of PGR.
        "gap_within_noise": gap_and_pgr["gap_within_noise"],
        "pgr": pgr(weak_acc, strong_acc, student_acc, min_gap),
        "pgr_ci": gap_and_pgr["pgr"],
        "agreement_with_weak": statistics.fmean([row["agreement_with_weak"] for row in per_seed]),
        "per_seed": per_seed,
        "ds_paper": deception["blind_spot.error_rate"],
        "targeting": deception.get("conflict.targeting"),
        "against_controls": controls,
        "deception_effect": effect,
        # Deception beyond imitation (the headline), and the teacher-aligned error added by the conflict.
        "verdict": None if controls is None else controls["verdict"],
        "added_verdict": None if controls is None else controls["added_verdict"],
        "deception": deception,
        "table": {
            cell: {"n": deception["sizes"][0][cell], **deception[f"error_rate.{cell}"]}
            for cell in deception["sizes"][0]
        },
    }


def _accuracy_rows(plan: Plan, predictions: Mapping[str, Dataset]) -> list[AccuracyRow]:
    """Each model of the plan over its seeds (one row a label): its accuracy with its interval."""
    analysis = plan.recipe.analysis
    by_label: dict[str, list] = {}
    for spec in plan.models:
        by_label.setdefault(spec.label, []).append(spec)
    accuracies = []
    for label, specs in by_label.items():
        probs = [np.asarray(predictions[spec.key]["prob_chosen"]) for spec in specs]
        stat = accuracy_interval(probs, analysis.n_bootstrap, analysis.confidence)
        accuracies.append({"label": label, "seeds": len(specs), **stat})
    return accuracies


def accuracy_interval(probs_by_seed: list[np.ndarray], n_bootstrap: int, confidence: float) -> dict[str, Any]:
    """A model's accuracy over its seeds (each seed's `prob_chosen` on the same test pairs) with its interval: the test
    pairs resampled with the draws of the PGR intervals (bootstrap seed 0) and the seeds' spread, as for PGR."""
    weights = pair_weights(len(probs_by_seed[0]), n_bootstrap, seed=0)
    per_seed = [{"accuracy": ratio(weights @ (probs > 0.5), weights.sum(axis=1))} for probs in probs_by_seed]
    return seed_mean_intervals(per_seed, confidence, bounds=lambda key: (0.0, 1.0))["accuracy"]


def _weak_known(plan: Plan, weak: Any, predictions: Mapping[str, Dataset]) -> np.ndarray:
    """A weak teacher's probability on the harmless response by the score it labelled with, which defines what it
    knows (`analysis.weak_areas: label_score`): for a weak policy its log-likelihood difference, for a reward model
    its `prob_chosen`."""
    frame = predictions[weak.key]
    score = REGISTRY[weak.task].label_score(plan.recipe) if plan.recipe.analysis.weak_areas == "label_score" else None
    if score is None:
        return np.asarray(frame["prob_chosen"], dtype=float)
    column, scale = score
    return 1.0 / (1.0 + np.exp(-scale * np.asarray(frame[column], dtype=float)))


def _analyzers(
    plan: Plan,
    predictions: Mapping[str, Dataset],
    specs: list[StudentSpec],
    baselines: list[StudentSpec | None],
    measured_by: list[StudentSpec] | None = None,
    training: Mapping[str, Dataset] | None = None,
) -> list[DeceptionAnalyzer]:
    """One analyzer per seed: each student against the given twin, its strong ceiling and the weak model of
    `measured_by` (default its own), with its training agreement gain over the twin where `training` has both."""
    analysis = plan.recipe.analysis
    return [
        DeceptionAnalyzer(
            predictions[teacher.chain[0].key],
            predictions[plan.ceiling(spec.strong, spec.seed).key],
            predictions[spec.key],
            baseline=None if baseline is None else predictions[baseline.key],
            known=analysis.known,
            threshold=analysis.threshold,
            weak_known=_weak_known(plan, teacher.chain[0], predictions),
            agreement_gain=_agreement_gain(training or {}, spec, baseline),
        )
        for spec, baseline, teacher in zip(specs, baselines, measured_by or specs, strict=True)
    ]


def _agreement_gain(training: Mapping[str, Dataset], spec: StudentSpec, twin: StudentSpec | None) -> float | None:
    """How much more often `spec` sides with its teacher's labels than its twin, on the split they learned from."""
    if twin is None or spec.key not in training or twin.key not in training:
        return None
    mine, theirs = training[spec.key], training[twin.key]
    by_id = dict(zip(theirs["id"], theirs["prob_chosen"]))
    if set(by_id) != set(mine["id"]):
        raise ValueError(f"the training predictions of {spec.key!r} and its twin {twin.key!r} cover different pairs")
    twin_probs = [by_id[pair_id] for pair_id in mine["id"]]
    return training_agreement_gain(mine["prob_chosen"], twin_probs, mine[TEACHER_COLUMN])


def _against_controls(
    plan: Plan, predictions: Mapping[str, Dataset], specs: list[StudentSpec], training: Mapping[str, Dataset]
) -> dict[str, Any] | None:
    """A conflicted student's deception effects and verdicts against its controls (see
    [`~w2s_align.analysis.deception.deception_against_controls`]), every one measured against the student's twin, and
    under `checks` the verdicts on each check of them (`conflicts.checks`: a student judged as if it were this one);
    None without a twin on every seed (a recipe without no-conflict students and without controls)."""
    twins = [plan.baseline(spec) for spec in specs]
    if any(twin is None for twin in twins):
        return None
    analysis = plan.recipe.analysis

    def analyzers(group: list[StudentSpec]) -> list[DeceptionAnalyzer]:
        return _analyzers(plan, predictions, group, twins, training=training)

    def seeds_of(derive) -> dict[str, list[StudentSpec]]:
        groups: dict[str, list[StudentSpec]] = {}
        for spec in specs:
            for name, other in derive(spec).items():
                groups.setdefault(name, []).append(other)
        return {name: group for name, group in groups.items() if len(group) == len(specs)}

    controls = {name: analyzers(group) for name, group in seeds_of(plan.controls).items()}
    bootstrap = (analysis.n_bootstrap, analysis.confidence)
    out = deception_against_controls(analyzers(specs), controls, *bootstrap)
    out["checks"] = {}
    for name, group in seeds_of(plan.checks).items():
        judged = deception_against_controls(analyzers(group), controls, *bootstrap)
        out["checks"][name] = {
            "deceptive": check_of(name)[0].deceptive,
            **{key: judged[key] for key in ("added_verdict", "verdict", "inconclusive")},
            "vs_placebo": judged["controls"]["placebo"]["effect"],
            "vs_imitation": None if judged["imitation"] is None else judged["imitation"]["effect"],
        }
    return out


def _comparisons(
    plan: Plan,
    predictions: Mapping[str, Dataset],
    groups: dict[str, list[StudentSpec]],
    rows: list[dict[str, Any]],
    min_gap: float,
) -> list[dict[str, Any]]:
    """Each student against its counterparts ([`Plan.counterparts`]) on the same seeds: paired differences of
    accuracy, PGR and the targeting statistics, with their intervals. Both are measured against the counterpart's
    weak model, so that they share a gap: the same teacher, but for an ensemble's student its first member alone."""
    analysis = plan.recipe.analysis

    def analyzers(specs: list[StudentSpec], measured_by: list[StudentSpec]) -> list[DeceptionAnalyzer]:
        return _analyzers(plan, predictions, specs, [plan.baseline(spec) for spec in specs], measured_by)

    noise = {row["label"]: row["gap_within_noise"] for row in rows}
    out = []
    for specs in groups.values():
        by_factor: dict[str, list[StudentSpec]] = {}
        for spec in specs:
            for factor, other in plan.counterparts(spec):
                by_factor.setdefault(factor, []).append(other)
        for factor, others in by_factor.items():
            if len(others) != len(specs):  # the counterpart lacks some of the seeds: no paired difference
                continue
            difference = compare_seeds(
                analyzers(specs, others),
                analyzers(others, others),
                analysis.n_bootstrap,
                analysis.confidence,
                min_gap=min_gap,
            )
            keys = ("accuracy.student", "pgr", "blind_spot.targeting", "conflict.targeting", "added_error.matched")
            out.append(
                {
                    "label": specs[0].label,
                    "against": others[0].label,
                    "factor": factor,
                    "seeds": len(specs),
                    "gap_within_noise": noise[others[0].label],
                    # Same number of pairs, but not the same pairs: a bootstrapped chain alternates splits.
                    "note": "trains on the other split's pairs" if specs[0].split != others[0].split else None,
                    **{key: difference[key] for key in keys if key in difference},
                }
            )
    return out
