"""The metrics of a run from hand-made predictions (`w2s_align.analysis.results.build_metrics`): every number is one a
reader can recompute from the predictions."""

import numpy as np
import pytest
from datasets import Dataset

from w2s_align.analysis.metrics import pgr
from w2s_align.analysis.results import accuracy_interval, build_metrics
from w2s_align.plan_builder import build_plan
from w2s_align.recipe_yaml import recipe_from_dict

N = 20


def plan_of(seeds):
    raw = {
        "name": "hand",
        "seeds": seeds,
        "ladder": [{"name": "weak", "model": "m"}, {"name": "strong", "model": "m"}],
        "methods": ["xent"],
        "analysis": {"n_bootstrap": 200},
    }
    return build_plan(recipe_from_dict(raw))


def predictions_with(correct: int, seed: int) -> Dataset:
    """`correct` of the N pairs right (confidently), the others wrong, in a seeded order."""
    right = np.random.default_rng(seed).permutation([True] * correct + [False] * (N - correct))
    probs = np.where(right, 0.9, 0.2)
    margins = np.log(probs / (1 - probs))
    return Dataset.from_dict(
        {"id": [f"p{i}" for i in range(N)], "prob_chosen": probs, "margin": margins, "correct": right}
    )


def test_accuracies_and_pgr_are_those_of_the_predictions():
    plan = plan_of([0, 1])
    counts = {"weak.gt": (10, 12), "strong.gt": (18, 16), "strong.from-weak.xent": (14, 15)}
    predictions = {}
    for spec in plan.models:
        name = spec.key.rsplit(".seed", 1)[0]
        predictions[spec.key] = predictions_with(counts[name][spec.seed], seed=spec.seed * 10 + len(predictions))
    metrics = build_metrics(plan, predictions)
    for spec in plan.models:
        name = spec.key.rsplit(".seed", 1)[0]
        assert metrics["models"][spec.key]["accuracy"] == counts[name][spec.seed] / N
    (row,) = metrics["students"]
    weak, strong, student = (np.mean(counts[name]) / N for name in counts)
    assert (row["weak_accuracy"], row["strong_accuracy"], row["student_accuracy"]) == pytest.approx(
        (weak, strong, student)
    )
    assert row["pgr"] == pytest.approx(pgr(weak, strong, student)) == pytest.approx((student - weak) / (strong - weak))
    assert row["pgr_ci"]["ci_low"] < row["pgr"] < row["pgr_ci"]["ci_high"]
    by_label = {entry["label"]: entry for entry in metrics["accuracy"]}
    assert (
        by_label["strong (ground truth)"]["value"] == pytest.approx(strong)
        and by_label["strong (ground truth)"]["seeds"] == 2
    )


def test_misaligned_predictions_are_refused():
    plan = plan_of([0])
    predictions = {spec.key: predictions_with(10, seed=0) for spec in plan.models}
    last = plan.models[-1].key
    predictions[last] = predictions[last].select(list(reversed(range(N))))
    with pytest.raises(ValueError, match=f"the test examples of model '{last}' do not line up"):
        build_metrics(plan, predictions)


def test_an_accuracy_interval_covers_its_mean_and_narrows_with_more_pairs():
    rng = np.random.default_rng(0)
    small = [np.where(rng.random(40) < 0.7, 0.9, 0.1) for _ in range(3)]
    large = [np.where(rng.random(4000) < 0.7, 0.9, 0.1) for _ in range(3)]
    narrow, wide = accuracy_interval(large, 300, 0.95), accuracy_interval(small, 300, 0.95)
    for stat, probs in ((narrow, large), (wide, small)):
        assert stat["value"] == pytest.approx(np.mean([np.mean(p > 0.5) for p in probs]))
        assert stat["ci_low"] < stat["value"] < stat["ci_high"] and stat["defined_seeds"] == 3
    assert narrow["ci_high"] - narrow["ci_low"] < (wide["ci_high"] - wide["ci_low"]) / 3


def test_a_model_at_chance_on_a_seed_is_flagged_in_the_console_and_the_report():
    from w2s_align.analysis.render import render_console, render_markdown

    plan = plan_of([0, 1])
    # 20 pairs: 11 right is a coin toss's result; 19 right is not
    counts = {"weak.gt": (19, 19), "strong.gt": (20, 20), "strong.from-weak.xent": (19, 11)}
    predictions = {
        spec.key: predictions_with(counts[spec.key.rsplit(".seed", 1)[0]][spec.seed], seed=spec.seed)
        for spec in plan.models
    }
    metrics = build_metrics(plan, predictions)
    assert [key for key, model in metrics["models"].items() if model["at_chance"]] == ["strong.from-weak.xent.seed1"]
    flagged = "strong <- weak (xent), seed 1"
    console = render_console(metrics)
    assert "At chance on a seed" in console and f"    {flagged}\n" in console
    assert flagged in render_markdown(metrics, None)
    counts["strong.from-weak.xent"] = (19, 18)
    predictions = {
        spec.key: predictions_with(counts[spec.key.rsplit(".seed", 1)[0]][spec.seed], seed=spec.seed)
        for spec in plan.models
    }
    assert "At chance" not in render_console(build_metrics(plan, predictions))
