"""Weak labeling: batched, length-sorted scoring returns the same rewards in the original order."""

import json
import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from w2s_align.labeling import LABELS_META, WeakLabeler, load_labels, score_sequences
from w2s_align.models import load_tokenizer, tokenize_pairs
from w2s_align.synthetic import generate_pairs


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    return model.eval(), load_tokenizer(str(tiny_model_dir))


def test_batched_sorted_scores_equal_one_at_a_time(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    pairs = tokenize_pairs(generate_pairs(20, seed=4), tokenizer, max_length=128)
    sequences = list(pairs["chosen_ids"]) + list(pairs["rejected_ids"])
    assert len({len(s) for s in sequences}) > 3, "lengths must vary for the test to mean anything"
    batched = score_sequences(model, sequences, tokenizer.pad_token_id, batch_size=7)
    with torch.no_grad():
        single = [model(input_ids=torch.tensor([ids])).logits[0, 0].item() for ids in sequences]
    assert batched.tolist() == pytest.approx(single, abs=1e-4)


def test_labels_are_sigmoid_of_reward_difference_and_saved_with_their_labeler(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    pairs = generate_pairs(12, seed=5)
    labeler = WeakLabeler(model, tokenizer, labeler_id="weak@stage-abc", batch_size=8, max_length=128)
    labels = labeler.label(pairs)
    for row in labels:
        expected = 1 / (1 + math.exp(-(row["reward_chosen"] - row["reward_rejected"])))
        assert row["soft_label"] == pytest.approx(expected, rel=1e-5)
    assert labels["id"] == pairs["id"]
    labeler.save(labels, tmp_path / "labels")
    loaded = load_labels(tmp_path / "labels")
    assert loaded["soft_label"] == pytest.approx(labels["soft_label"])
    assert set(loaded["labeler"]) == {"weak@stage-abc"}
    meta = json.loads((tmp_path / "labels" / LABELS_META).read_text())
    assert meta["labeler"] == "weak@stage-abc" and meta["num_pairs"] == 12
    assert 0.5 <= meta["mean_confidence"] <= 1.0
