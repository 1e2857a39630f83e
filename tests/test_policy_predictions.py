"""Policy evaluation: log-likelihoods of both responses and margins by every measure, against one pass a sequence."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from w2s_align.models import load_tokenizer
from w2s_align.policy_predictions import predict_policy_pairs, sequence_logps, tokenize_completions
from w2s_align.synthetic import generate_pairs


@pytest.fixture
def tokenizer(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


def policy(tiny_model_dir, seed=0):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def one_pass_logps(model, sequences, lengths) -> list[float]:
    """Summed log-probability of the last `lengths[i]` tokens of each sequence, one forward pass per sequence."""
    out = []
    with torch.no_grad():
        for ids, length in zip(sequences, lengths):
            logits = model(input_ids=torch.tensor([ids])).logits[0]
            logps = torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
            out.append(logps[-length:].sum().item())
    return out


def test_policy_predictions_by_every_measure(tiny_model_dir, tokenizer):
    data = generate_pairs(6, seed=0).select_columns(["id", "prompt", "chosen", "rejected"])
    data = data.add_column("kind", ["surface"] * 6)
    model, reference = policy(tiny_model_dir, 0), policy(tiny_model_dir, 1)
    predictions = predict_policy_pairs(model, reference, tokenizer, data, beta=0.2, measure="avg_logp", batch_size=4)
    sequences, lengths = tokenize_completions(data, tokenizer, max_length=512)
    lp, ref = one_pass_logps(model, sequences, lengths), one_pass_logps(reference, sequences, lengths)
    for i, row in enumerate(predictions):
        close = dict(rel=1e-4, abs=1e-5)  # float32 forward passes
        assert row["logp_chosen"] == pytest.approx(lp[i], **close)
        assert row["margin_logp"] == pytest.approx(lp[i] - lp[6 + i], **close)
        assert row["margin_implicit"] == pytest.approx(0.2 * ((lp[i] - ref[i]) - (lp[6 + i] - ref[6 + i])), **close)
        avg = lp[i] / lengths[i] - lp[6 + i] / lengths[6 + i]
        assert row["margin"] == pytest.approx(avg, **close) and row["correct"] == (avg > 0)
        assert row["kind"] == "surface"
    with pytest.raises(ValueError, match="needs a reference"):
        predict_policy_pairs(model, None, tokenizer, data, beta=0.2, measure="implicit")


def test_a_single_pass_equals_separate_passes_of_each_sequence(tiny_model_dir, tokenizer):
    model = policy(tiny_model_dir)
    data = generate_pairs(5, seed=0).select_columns(["id", "prompt", "chosen", "rejected"])
    sequences, lengths = tokenize_completions(data, tokenizer, max_length=512)
    batched = sequence_logps(model, sequences, lengths, tokenizer.pad_token_id, batch_size=4)
    assert batched.tolist() == pytest.approx(one_pass_logps(model, sequences, lengths), rel=1e-5)
