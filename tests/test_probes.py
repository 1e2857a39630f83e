"""Label cleaning with the strong rung's features: cross-fitted kNN and logistic-regression probes."""

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from w2s_align.errors import W2SInputError
from w2s_align.pipeline import W2SPipeline
from w2s_align.probes import clean_labels, knn_probe, logreg_probe, probe_probabilities
from w2s_align.recipe_yaml import recipe_from_dict


def constructed(n=400, flip=0.3, seed=0):
    """Pairs whose features know the answer: x = o * (mu + noise), `chosen` is better where o = +1 (o is the order
    the pair is stored in); the weak labels are the truth with `flip` of them reversed at random."""
    rng = np.random.default_rng(seed)
    mu = np.zeros(16)
    mu[0] = 2.0
    order = rng.choice([-1.0, 1.0], size=n)
    x = order[:, None] * (mu + rng.normal(size=(n, 16)))
    truth = (order > 0).astype(float)
    wrong = rng.random(n) < flip
    weak = np.where(wrong, 1 - truth, truth)
    return x, truth, weak, wrong


@pytest.mark.parametrize("kind", ["knn", "logreg"])
def test_a_probe_on_features_that_know_the_answer_finds_the_wrong_labels(kind):
    x, truth, weak, wrong = constructed()
    probe = probe_probabilities(x, weak, kind, k=25, l2=1e-2, folds=5, seed=0)
    assert ((probe > 0.5) == (truth > 0.5)).mean() > 0.9  # the features carry the truth; 70% of labels do
    pairs = Dataset.from_dict({"id": list(range(len(x))), "soft_label": weak.tolist()})
    relabelled = clean_labels(pairs, probe, "relabel")
    assert ((np.asarray(relabelled["soft_label"]) > 0.5) == (truth > 0.5)).mean() > 0.9
    assert relabelled["probe_label"] == pytest.approx(probe.tolist())
    kept = clean_labels(pairs, probe, "drop")
    ids = np.asarray(kept["id"])
    assert ((np.asarray(kept["soft_label"]) > 0.5) == (truth[ids] > 0.5)).mean() > 0.95
    assert wrong[ids].mean() < 0.05 and 0.6 < len(ids) / len(x) < 0.8  # most of the 30% wrong ones are dropped


@pytest.mark.parametrize("kind", ["knn", "logreg"])
def test_swapping_pairs_swaps_their_probe_prediction_and_nothing_else(kind):
    x, _, weak, _ = constructed(n=120)
    flip = np.random.default_rng(3).random(len(x)) < 0.5
    probe = probe_probabilities(x, weak, kind, k=10, l2=1e-2, folds=4, seed=1)
    swapped = probe_probabilities(
        np.where(flip[:, None], -x, x), np.where(flip, 1 - weak, weak), kind, k=10, l2=1e-2, folds=4, seed=1
    )
    assert swapped == pytest.approx(np.where(flip, 1 - probe, probe), abs=1e-6)


def examples(n=400, flip=0.3, seed=0):
    """Classification examples whose features know the answer (class 1 around +mu, class 0 around a shifted point,
    both on the positive side, as mean-pooled hidden states are); weak labels with `flip` of them wrong."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < 0.5).astype(float)
    center = np.where(truth[:, None] > 0.5, 5.0, 1.0) * np.eye(16)[0] + 4.0 * np.eye(16)[1]
    x = center + rng.normal(scale=0.5, size=(n, 16))
    wrong = rng.random(n) < flip
    return x, truth, np.where(wrong, 1 - truth, truth), wrong


@pytest.mark.parametrize("kind", ["knn", "logreg"])
def test_a_probe_of_classification_examples_finds_the_wrong_labels_and_flipping_every_label_flips_it(kind):
    x, truth, weak, _ = examples()
    probe = probe_probabilities(x, weak, kind, k=25, l2=1e-2, folds=5, seed=0, paired=False)
    assert ((probe > 0.5) == (truth > 0.5)).mean() > 0.9  # the features carry the truth; 70% of labels do
    # no pair to swap: the label flip is the invariance (class 1 and class 0 trade names)
    flipped = probe_probabilities(x, 1 - weak, kind, k=25, l2=1e-2, folds=5, seed=0, paired=False)
    assert flipped == pytest.approx(1 - probe, abs=1e-6)


@pytest.mark.parametrize(
    "probe", [lambda x, y: knn_probe(x, y, 10, 5, 0), lambda x, y: logreg_probe(x, y, 1e-2, 5, 0)]
)
def test_no_pair_is_predicted_by_a_probe_that_saw_its_label(probe):
    x, _, weak, _ = constructed(n=100)
    before = probe(x, weak)
    changed = weak.copy()
    changed[7] = 1 - changed[7]
    after = probe(x, changed)
    assert after[7] == before[7]  # its own label reached only the probes of the other folds
    assert not np.allclose(after, before)


def test_knn_by_hand():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [0.0, 1.0]])
    # one pair per fold: pair 2 is pair 0 stored the other way round, so each reads the other's label reversed
    assert knn_probe(x, np.array([1.0, 1.0, 0.0, 0.5]), k=1, folds=4, seed=0).tolist() == [1.0, 1.0, 0.0, 1.0]
    assert knn_probe(x, np.array([1.0, 0.6, 0.0, 0.5]), k=2, folds=4, seed=0)[3] == pytest.approx((0.6 + 1.0) / 2)


def test_a_probe_needs_a_pretrained_strong_rung(tiny_recipe):
    tiny_recipe["ladder"][1]["random_init"] = True
    tiny_recipe["label_filters"] = ["none", "knn-drop"]
    with pytest.raises(W2SInputError, match="cleans labels with 'knn-drop'.*random_init rung"):
        recipe_from_dict(tiny_recipe)


@pytest.mark.slow
def test_the_pipeline_cleans_a_students_labels_with_the_strong_rungs_probe(tiny_recipe):
    tiny_recipe["methods"] = ["xent"]
    tiny_recipe["label_filters"] = ["none", "knn-relabel", "logreg-drop"]
    tiny_recipe["probe"] = {"k": 5, "folds": 3}
    lines = []
    pipeline = W2SPipeline(recipe_from_dict(tiny_recipe), log=lines.append)
    pipeline.prepare()
    metrics = pipeline.run()
    assert {
        "tiny-l2.from-tiny-l1.xent.knn-relabel-filter.seed0",
        "tiny-l2.from-tiny-l1.xent.logreg-drop-filter.seed0",
    } <= set(metrics["models"])
    stages = Path(tiny_recipe["output_dir"], "stages")
    (features,) = stages.glob("features-tiny-l2-w2s-*")  # computed once, read by both cleaned students
    x = Dataset.from_parquet(str(features / "features.parquet"))
    assert x.num_rows == 48 and len(x["x"][0]) == 32  # the tiny GPT-2's width
    relabel = [line for line in lines if line.startswith("  knn-relabel: the probe disagrees with")]
    assert len(relabel) == 1 and relabel[0].endswith("weak labels (relabelled)")
    dropped = int(next(line for line in lines if line.startswith("  logreg-drop")).split()[5])
    (stage,) = stages.glob("train-tiny-l2.from-tiny-l1.xent.logreg-drop-filter.seed0-*")
    steps = json.loads((stage / "train_log.json").read_text())[-1]["step"]
    assert steps == -(-(48 - dropped) // 8)  # it trained on the pairs the probe agreed with
    determinants = json.loads((stage / "stage.json").read_text())["determinants"]
    assert determinants["filter"] == ["logreg-drop", {"k": 5, "l2": 0.01, "folds": 3}]
    assert determinants["features"] == features.name.rsplit("-", 1)[1]
