"""Conflicts: the explicit term on hand-computed tensors, helpfulness orientation and the implicit mixing."""

import math

import pytest
import torch
from datasets import Dataset

from w2s_align.conflicts import (
    coin_toss,
    conflict_labels,
    helpfulness_pairs,
    mix_implicit_conflict,
    random_direction,
)
from w2s_align.labeling import filter_labels
from w2s_align.losses import explicit_conflict_loss
from w2s_align.options import ConflictSetting
from w2s_align.synthetic import generate_pairs


def test_explicit_term_rewards_only_pairs_that_already_prefer_the_harmful_response():
    delta = torch.tensor([2.0, -1.0, -3.0, 0.5])
    # `rejected` is harmful (conflict label 0): c = [0, 1, 1, 0]; BCE(sigmoid(d), 0) = log(1 + e^d)
    expected = 0.5 * (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(-3.0))) / 4
    assert explicit_conflict_loss(delta, torch.zeros(4), alpha=0.5).item() == pytest.approx(expected, rel=1e-6)
    # the same pairs stored the other way round (harmful first): the same term
    assert explicit_conflict_loss(-delta, torch.ones(4), alpha=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_explicit_term_is_triggered_by_the_trigger_logit():
    # DPO students: the trigger is the raw log-likelihood preference, the term is on the implicit reward logit.
    logits, trigger = torch.tensor([0.0, 0.0]), torch.tensor([-2.0, 2.0])
    # pair 1 already prefers the harmful `rejected` by likelihood: its term is alpha * BCE(sigmoid(0), 0) / 2
    term = explicit_conflict_loss(logits, torch.zeros(2), alpha=1.0, trigger=trigger)
    assert term.item() == pytest.approx(math.log(2) / 2, rel=1e-6)


def test_explicit_term_gradient_pushes_the_harmful_response_further_ahead():
    delta = torch.tensor([-1.0, 1.0], requires_grad=True)
    explicit_conflict_loss(delta, torch.zeros(2), alpha=1.0).backward()
    # d/dd softplus(d) = sigmoid(d) > 0: gradient descent lowers delta (more harmful preferred) on pair 1 only
    assert delta.grad[0].item() == pytest.approx(1 / (1 + math.exp(1.0)) / 2, rel=1e-6)
    assert delta.grad[1].item() == 0.0


def test_explicit_term_is_zero_when_the_model_prefers_every_harmless_response():
    assert explicit_conflict_loss(torch.tensor([0.1, 3.0]), torch.zeros(2), alpha=2.0).item() == 0.0


def test_conflict_labels():
    assert ConflictSetting().label == "none"
    assert ConflictSetting("explicit", 0.5).label == "explicit-0.5"
    assert ConflictSetting("implicit", 1.0).label == "implicit-1"
    with pytest.raises(ValueError):
        ConflictSetting("covert")


def test_helpfulness_pairs_are_labelled_by_helpfulness_in_random_order():
    pairs = generate_pairs(40, seed=2)
    helpful = helpfulness_pairs(pairs, seed=0)
    assert 0 < sum(helpful["soft_label"]) < 40  # stored in both orders
    assert "helpful_label" not in helpful.column_names
    for original, row in zip(pairs, helpful):
        assert row["soft_label"] in (0.0, 1.0) and row["objective"] == "helpful"
        preferred = row["chosen"] if row["soft_label"] == 1.0 else row["rejected"]
        # harmful requests: the harmless response is a refusal and the more helpful one complies
        assert preferred == (original["rejected"] if original["harmful"] else original["chosen"])


def test_pairs_without_helpful_label_prefer_chosen():
    data = Dataset.from_dict(
        {"id": ["a", "b"], "prompt": ["q", "q"], "chosen": ["helpful"] * 2, "rejected": ["no"] * 2}
    )
    for row in helpfulness_pairs(data, seed=0):
        assert (row["chosen"] if row["soft_label"] == 1.0 else row["rejected"]) == "helpful"


def test_implicit_mixing_ratio_and_columns():
    harmless = Dataset.from_dict({"chosen_ids": [[1]] * 10, "rejected_ids": [[2]] * 10, "soft_label": [0.7] * 10})
    helpful = Dataset.from_dict(
        {"chosen_ids": [[3]] * 30, "rejected_ids": [[4]] * 30, "soft_label": [1.0] * 30, "extra": [0] * 30}
    )
    mixed = mix_implicit_conflict(harmless, helpful, ratio=1.0, seed=0)
    assert mixed.num_rows == 20
    assert sorted(mixed.column_names) == ["chosen_ids", "objective", "rejected_ids", "soft_label"]
    assert mixed["objective"].count("helpful") == 10
    assert mixed["objective"][:10] != ["harmless"] * 10  # shuffled together
    assert mix_implicit_conflict(harmless, helpful, ratio=0.5)["objective"].count("helpful") == 5
    with pytest.raises(ValueError, match="needs 40 helpfulness pairs"):
        mix_implicit_conflict(harmless, helpful, ratio=4.0)


def test_simpo_conflict_keeps_its_margin():
    """The paper's SimPO conflict: -log sigmoid(toward harmful - gamma) on the pairs already leaning harmful."""
    logits = torch.tensor([-1.0, 2.0])  # pair 1 already prefers `rejected`, the harmful response
    with_margin = explicit_conflict_loss(logits, torch.zeros(2), alpha=1.0, gamma=0.5).item()
    assert with_margin == pytest.approx(math.log(1 + math.exp(-(1.0 - 0.5))) / 2, rel=1e-6)
    assert with_margin > explicit_conflict_loss(logits, torch.zeros(2), alpha=1.0).item()


def _pairs(n: int = 400) -> Dataset:
    return Dataset.from_dict(
        {
            "id": [f"p{i}" for i in range(n)],
            "prompt": [""] * n,
            "chosen": [f"harmless {i}" for i in range(n)],
            "rejected": [f"harmful {i}" for i in range(n)],
            "gt_label": [1.0] * n,
        }
    )


def test_the_random_direction_is_a_fair_coin_that_follows_a_response_not_a_position():
    pairs = _pairs()
    tosses = coin_toss(pairs, seed=0)
    assert 0.4 < sum(tosses) / len(tosses) < 0.6 and set(tosses) == {0.0, 1.0}
    assert coin_toss(pairs, seed=1) != tosses  # another seed, another coin
    swapped = pairs.map(lambda row: {"chosen": row["rejected"], "rejected": row["chosen"], "gt_label": 0.0})
    assert coin_toss(swapped, seed=0) == [1.0 - toss for toss in tosses]  # the same response is chosen
    assert coin_toss(pairs.select(range(50, 80)), seed=0) == tosses[50:80]  # a subset keeps its tosses
    # the conflict label: harmful direction from the ground truth, random direction from the coin
    assert conflict_labels(pairs)["conflict_label"] == [0.0] * 400
    assert conflict_labels(pairs, "random", seed=0)["conflict_label"] == tosses


def test_the_implicit_control_mixes_the_same_helpfulness_pairs_with_coin_toss_labels():
    helpful = _pairs(100).map(lambda row: {"soft_label": 1.0}).remove_columns("gt_label")
    control = random_direction(helpful, seed=3)
    assert control["id"] == helpful["id"] and control["chosen"] == helpful["chosen"]
    assert control["soft_label"] == coin_toss(helpful, seed=3)


def test_the_random_subset_keeps_as_many_pairs_as_the_confidence_filter_without_reading_the_labels():
    pairs = _pairs().add_column("soft_label", [0.9 if i % 4 == 0 else 0.6 for i in range(400)])
    confident = filter_labels(pairs, "confidence", 0.75)
    subset = filter_labels(pairs, "random", 0.75, seed=0)
    assert subset.num_rows == confident.num_rows == 100
    assert subset["id"] != confident["id"]  # not the confident ones
    relabelled = pairs.remove_columns("soft_label").add_column(
        "soft_label", [0.9 if i % 4 == 1 else 0.6 for i in range(400)]
    )
    assert filter_labels(relabelled, "random", 0.75, seed=0)["id"] == subset["id"]  # the same count, the same draw
    assert filter_labels(pairs, "random", 0.75, seed=1)["id"] != subset["id"]
