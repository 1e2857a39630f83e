"""Weak ensembles: members combined into one teacher, planned, trained and reported as the weak model."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from w2s_align.ensembles import combine, ensemble_labels, ensemble_predictions
from w2s_align.errors import W2SInputError
from w2s_align.labeling import load_labels
from w2s_align.pipeline import W2SPipeline
from w2s_align.plan_builder import build_plan
from w2s_align.recipe_yaml import recipe_from_dict
from w2s_align.specs import CeilingSpec, EnsembleSpec, StudentSpec


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_members_combine_by_hand():
    members = np.array([[0.9, 0.5, 1.0], [0.6, 0.2, 0.5]])
    assert combine(members, "probability").tolist() == pytest.approx([0.75, 0.35, 0.75])
    by_hand = [1 / (1 + math.exp(-(logit(0.9) + logit(0.6)) / 2)), 1 / (1 + math.exp(-logit(0.2) / 2))]
    assert combine(members, "logodds")[:2].tolist() == pytest.approx(by_hand)
    assert combine(members, "logodds")[2] == pytest.approx(1 / (1 + math.exp(-logit(1 - 1e-6) / 2)))  # clipped


@pytest.mark.parametrize("how", ["logodds", "probability"])
def test_swapping_a_pair_for_every_member_swaps_the_ensemble(how):
    members = np.random.default_rng(0).random((3, 50))
    flip = np.random.default_rng(1).random(50) < 0.5
    swapped = combine(np.where(flip, 1 - members, members), how)
    assert swapped == pytest.approx(np.where(flip, 1 - combine(members, how), combine(members, how)))


def test_predictions_and_labels_of_two_members():
    first = Dataset.from_dict(
        {"id": ["a", "b"], "prob_chosen": [0.8, 0.3], "correct": [True, False], "margin": [0, 0], "kind": ["x", "y"]}
    )
    second = Dataset.from_dict(
        {"id": ["b", "a"], "prob_chosen": [0.6, 0.4], "correct": [True, False], "margin": [0, 0], "kind": ["y", "x"]}
    )
    out = ensemble_predictions([first, second], "probability")
    assert out["id"] == ["a", "b"] and out["prob_chosen"] == pytest.approx([0.6, 0.45])  # aligned by id
    assert out["correct"] == [True, False] and out["kind"] == ["x", "y"]
    assert out["margin"] == pytest.approx([logit(0.6), logit(0.45)])
    labels = [
        Dataset.from_dict({"id": ["a", "b"], "soft_label": [0.7, 0.1], "labeler": ["one"] * 2, "gt_label": [1.0] * 2}),
        Dataset.from_dict({"id": ["a", "b"], "soft_label": [0.9, 0.5], "labeler": ["two"] * 2, "gt_label": [1.0] * 2}),
    ]
    combined = ensemble_labels(labels, "probability", "ens")
    assert combined["soft_label"] == pytest.approx([0.8, 0.3]) and combined["labeler"] == ["ens", "ens"]
    assert combined["gt_label"] == [1.0, 1.0]


def _recipe(**pair) -> dict:
    return {
        "name": "ens",
        "output_dir": "unused",
        "data": {"source": "synthetic", "gt_size": 40, "w2s_size": 30, "test_size": 20},
        "ladder": [{"name": name, "model": "m"} for name in ("s", "m", "l")],
        "pairs": [{"weak": "s", "strong": "l", **pair}],
        "conflicts": {"settings": ["none", "explicit"], "alphas": [0.5]},
    }


def test_the_plan_trains_every_member_and_teaches_with_their_ensemble():
    plan = build_plan(recipe_from_dict({**_recipe(ensemble={"rungs": ["m"], "seeds": 2}), "controls": False}))
    (ensemble,) = [step for step in plan.steps if isinstance(step, EnsembleSpec)]
    assert [member.teacher.key for member in ensemble.members] == [
        "s.gt.seed0", "s.gt.seed1000", "m.gt.seed0", "m.gt.seed1000"
    ]  # fmt: skip
    assert ensemble.key == "s+mx2.ensemble.seed0" and ensemble.split == "w2s"
    assert ensemble.label == "s + m (ensemble of 4, 2 seeds each, logodds)"
    students = [spec for spec in plan.models if isinstance(spec, StudentSpec)]
    assert [spec.key for spec in students] == ["l.from-s+mx2.xent.seed0", "l.from-s+mx2.xent.explicit-0.5.seed0"]
    assert all(spec.chain == [ensemble] and spec.labels is ensemble for spec in students)
    reported = [spec.key for spec in plan.models if not isinstance(spec, StudentSpec)]
    assert reported == ["s.gt.seed0", "m.gt.seed0", "l.gt.seed0", "s+mx2.ensemble.seed0"]  # not the extra seeds
    order = [step.stage_name for step in plan.steps]
    assert all(order.index(member.stage_name) < order.index(ensemble.stage_name) for member in ensemble.members)
    assert isinstance(plan.steps[order.index("train-s-gt-seed1000")], CeilingSpec)
    mean = build_plan(recipe_from_dict(_recipe(ensemble={"seeds": 3, "combine": "probability"})))
    assert [spec.key for spec in mean.models if isinstance(spec, EnsembleSpec)] == ["sx3-probability.ensemble.seed0"]


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ({"ensemble": {}}, "has one member"),
        ({"ensemble": {"rungs": ["x"]}}, "'pairs.0.ensemble.rungs.0' is 'x', which is not a rung"),
        ({"ensemble": {"rungs": ["l"]}}, "repeats the rung 'l'"),
        ({"ensemble": {"seeds": 0}}, "'pairs.0.ensemble.seeds' must be between 1 and 1000, got 0"),
        ({"ensemble": {"seeds": 2}, "via": ["m"]}, "without 'via'"),
    ],
)
def test_a_bad_ensemble_stops_the_recipe(pair, message):
    with pytest.raises(W2SInputError, match=message):
        recipe_from_dict(_recipe(**pair))


def test_policies_are_taught_by_an_ensemble_of_reward_models_only():
    raw = _recipe(ensemble={"seeds": 2})
    with pytest.raises(W2SInputError, match="set 'dpo.supervisor: reward'"):
        recipe_from_dict({**raw, "task": "dpo"})
    recipe_from_dict({**raw, "task": "dpo", "dpo": {"supervisor": "reward"}})


@pytest.mark.slow
def test_an_ensemble_of_two_seeds_teaches_a_student_and_is_its_weak_model(tiny_recipe):
    tiny_recipe["methods"] = ["xent"]
    tiny_recipe["pairs"] = [
        {"weak": "tiny-l1", "strong": "tiny-l2", "ensemble": {"seeds": 2}},
        {"weak": "tiny-l1", "strong": "tiny-l2"},
    ]
    pipeline = W2SPipeline(recipe_from_dict(tiny_recipe), log=[].append)
    pipeline.prepare()
    metrics = pipeline.run()
    run_dir = Path(tiny_recipe["output_dir"])
    row, single = metrics["students"]
    ensemble = metrics["models"]["tiny-l1x2.ensemble.seed0"]
    assert row["label"] == "tiny-l2 <- tiny-l1x2 (xent)" and row["weak_accuracy"] == ensemble["accuracy"]
    # against the student of one member, both measured against that member: a shared gap
    (compared,) = [c for c in metrics["comparisons"] if c["factor"] == "ensemble"]
    assert compared["against"] == single["label"] == "tiny-l2 <- tiny-l1 (xent)"
    difference = row["student_accuracy"] - single["student_accuracy"]
    assert compared["accuracy.student"]["value"] == pytest.approx(difference)
    gap = single["strong_accuracy"] - single["weak_accuracy"]
    assert compared["pgr"]["value"] == pytest.approx(difference / gap)
    members = [
        Dataset.from_parquet(str(next(run_dir.glob(f"stages/train-tiny-l1-gt-seed{s}-*")) / "predictions.parquet"))
        for s in (0, 1000)
    ]
    combined = Dataset.from_parquet(str(run_dir / "predictions" / "tiny-l1x2.ensemble.seed0.parquet"))
    expected = combine(np.array([m["prob_chosen"] for m in members]), "logodds")
    assert combined["prob_chosen"] == pytest.approx(expected.tolist())
    assert ensemble["accuracy"] == pytest.approx(float(np.mean(expected > 0.5)))
    (stage,) = run_dir.glob("stages/ensemble-tiny-l1x2-seed0-*")
    labels = load_labels(stage)
    member_labels = [load_labels(next(run_dir.glob(f"stages/labels-tiny-l1.seed{s}-*"))) for s in (0, 1000)]
    assert labels["soft_label"] == pytest.approx(
        combine(np.array([m["soft_label"] for m in member_labels]), "logodds").tolist()
    )
    (student,) = run_dir.glob("stages/train-tiny-l2.from-tiny-l1x2.xent.seed0-*")
    assert json.loads((student / "stage.json").read_text())["determinants"]["labels"] == stage.name.rsplit("-", 1)[1]
