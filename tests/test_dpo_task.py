"""The DPO task end to end: a tiny recipe (SFT, weak policy labels, students, conflicts, evaluation), and SimPO
students supervised by a weak reward model."""

import json
from pathlib import Path

import pytest
from datasets import Dataset

from w2s_align.pipeline import W2SPipeline
from w2s_align.recipe_yaml import recipe_from_dict
from w2s_align.tasks import REGISTRY

pytestmark = pytest.mark.slow  # every test here trains models through the pipeline


@pytest.fixture
def tiny_dpo_recipe(tiny_recipe):
    tiny_recipe["task"] = "dpo"
    tiny_recipe["data"].update(gt_size=32, w2s_size=32, test_size=24)
    tiny_recipe["methods"] = ["xent", "logconf"]
    tiny_recipe["dpo"] = {"beta": 0.1, "sft": True}
    tiny_recipe["conflicts"] = {"settings": ["none", "explicit"], "alphas": [0.5], "methods": ["xent"]}
    tiny_recipe["analysis"] = {"n_bootstrap": 100}
    return tiny_recipe


def test_tiny_dpo_recipe_end_to_end(tiny_dpo_recipe):
    lines = []
    metrics = W2SPipeline(recipe_from_dict(tiny_dpo_recipe), log=lines.append).run()
    run_dir = Path(tiny_dpo_recipe["output_dir"])
    assert [row["label"] for row in metrics["students"] if not row["control"]] == [
        "tiny-l2 <- tiny-l1 (xent)",
        "tiny-l2 <- tiny-l1 (xent, explicit-0.5)",
        "tiny-l2 <- tiny-l1 (logconf)",
    ]
    # The conflicted student's controls: its twin with its batches in another order, the coin-toss direction, and the
    # twin at twice the epochs
    assert {row["control"] for row in metrics["students"]} == {None, "placebo", "random-direction", "imitation"}
    student = Dataset.from_parquet(str(run_dir / "predictions" / "tiny-l2.from-tiny-l1.xent.seed0.parquet"))
    assert student.num_rows == 24
    for measure in ("implicit", "logp", "avg_logp"):
        assert f"margin_{measure}" in student.column_names and f"correct_{measure}" in student.column_names
    assert student["margin"] == student["margin_implicit"]  # the DPO default measure
    # Every policy starts from its own SFT model, which is also its reference.
    stages = run_dir / "stages"
    # SFT stages: the weak and the strong rung on ground truth, and the strong rung on the weak preferences (shared
    # by the methods and the explicit conflict, which change the loss, and by the placebo and the imitation control,
    # which change how the preference training runs: none changes the preferred responses)
    assert len(list(stages.glob("sft-tiny-l1.*"))) == 1 and len(list(stages.glob("sft-tiny-l2.*"))) == 2
    (placebo,) = stages.glob("train-tiny-l2.from-tiny-l1.xent.placebo.seed0-*")
    assert Path((placebo / "reference.txt").read_text()).parent.name.startswith("sft-tiny-l2.from-tiny-l1.seed0-")
    (weak_stage,) = stages.glob("train-tiny-l1-gt-seed0-*")
    assert Path((weak_stage / "reference.txt").read_text()).parent.name.startswith("sft-tiny-l1.gt.seed0-")
    (label_file,) = (run_dir / "labels" / "tiny-l1.seed0" / "data").glob("w2s-*-00000-of-00001.parquet")
    labels = Dataset.from_parquet(str(label_file))
    # Yang et al.'s rule: hard labels toward the response the weak policy finds more likely (0.5 only on a tie)
    assert labels.num_rows == 32 and set(labels["soft_label"]) <= {0.0, 0.5, 1.0}
    assert {0.0, 1.0} <= set(labels["soft_label"])
    row = metrics["students"][1]
    assert "conflict_mistakes.all" in row["deception"] and set(row["against_controls"]["controls"]) == {
        "placebo",
        "random-direction",
        "imitation",
    }
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert set(saved["models"]) == {
        "tiny-l1.gt.seed0",
        "tiny-l2.gt.seed0",
        "tiny-l2.from-tiny-l1.xent.seed0",
        "tiny-l2.from-tiny-l1.xent.explicit-0.5.seed0",
        "tiny-l2.from-tiny-l1.logconf.seed0",
        "tiny-l2.from-tiny-l1.xent.placebo.seed0",  # the placebo
        "tiny-l2.from-tiny-l1.xent.imitation.seed0",  # the imitation control
        "tiny-l2.from-tiny-l1.xent.explicit-0.5-random.seed0",  # the random-direction control
    }
    again = []
    W2SPipeline(recipe_from_dict(tiny_dpo_recipe), log=again.append).run()
    assert not [line for line in again if line.startswith(("training", "labeling"))]


def test_simpo_students_supervised_by_a_weak_reward_model(tiny_dpo_recipe):
    tiny_dpo_recipe["dpo"] = {
        "loss_type": "simpo",
        "beta": 2.0,
        "simpo_gamma": 0.5,
        "supervisor": "reward",
        "sft": False,
    }
    tiny_dpo_recipe["methods"] = ["xent"]
    tiny_dpo_recipe["conflicts"] = {"settings": ["none"]}
    lines = []
    metrics = W2SPipeline(recipe_from_dict(tiny_dpo_recipe), log=lines.append).run()
    assert "training tiny-l1 (ground truth, reward model), seed 0" in lines
    assert "labeling the w2s split with tiny-l1-rm.seed0" in lines
    run_dir = Path(tiny_dpo_recipe["output_dir"])
    student = Dataset.from_parquet(str(run_dir / "predictions" / "tiny-l2.from-tiny-l1.xent.seed0.parquet"))
    assert student["margin"] == student["margin_avg_logp"]  # the SimPO default measure
    assert metrics["students"][0]["method"] == "xent"
    # PGR and the knowledge areas use the model that supervised: the weak reward model, reported with the ceilings
    assert metrics["students"][0]["weak_accuracy"] == metrics["models"]["tiny-l1-rm.gt.seed0"]["accuracy"]


@pytest.mark.parametrize(
    ("dpo", "score"),
    [
        ({}, ("margin_logp", 1.0)),
        ({"loss_type": "simpo"}, ("margin_avg_logp", 1.0)),
        ({"weak_labels": "implicit_reward_soft"}, ("margin_implicit", 1.0)),
        ({"loss_type": "simpo", "weak_labels": "implicit_reward_soft"}, ("margin_avg_logp", 2.0)),
    ],
)
def test_a_weak_policy_labels_and_knows_by_the_score_of_its_labelling_rule(dpo, score):
    from w2s_align.recipe_yaml import recipe_from_dict

    raw = {
        "name": "x",
        "task": "dpo",
        "ladder": [{"name": "a", "model": "m"}, {"name": "b", "model": "m"}],
        "dpo": dpo,
    }
    recipe = recipe_from_dict(raw)
    assert REGISTRY["dpo"].label_score(recipe) == score
    assert REGISTRY["reward"].label_score(recipe) is None  # a reward model labels by the score it is evaluated by
