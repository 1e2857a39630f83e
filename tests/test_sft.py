"""Supervised finetuning (`w2s_align.sft`): the start of a DPO rung, and the language modeling of generative
finetuning."""

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from w2s_align.models import load_tokenizer
from w2s_align.sft import W2SSFTConfig, supervised_finetune


def completion_loss(model, tokenizer, rows) -> float:
    """The mean loss of the completion tokens (what completion-only SFT trains), one row at a time."""
    losses = []
    for row in rows:
        prompt = tokenizer(row["prompt"])["input_ids"]
        ids = torch.tensor([prompt + tokenizer(row["completion"])["input_ids"]])
        labels = ids.clone()
        labels[0, : len(prompt)] = -100
        with torch.no_grad():
            losses.append(model(input_ids=ids, labels=labels).loss.item())
    return sum(losses) / len(losses)


def test_finetuning_learns_the_completions_and_saves_a_model_that_loads(tiny_model_dir, tmp_path):
    tokenizer = load_tokenizer(str(tiny_model_dir))  # with a pad token, as every rung's
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [{"prompt": f"Question {i}: is it kind?", "completion": " Yes, it is kind."} for i in range(16)]
    before = completion_loss(model, tokenizer, rows)
    args = W2SSFTConfig(
        output_dir=str(tmp_path / "checkpoints"), num_train_epochs=4, learning_rate=1e-2, max_length=64,
        per_device_train_batch_size=8, disable_dropout=True, save_strategy="no", report_to=[], seed=0,
    )  # fmt: skip
    assert args.bf16 is False  # derived from the device: a CPU has no bf16 training here
    trained = supervised_finetune(model, tokenizer, Dataset.from_list(rows), args, tmp_path / "model")
    assert completion_loss(trained, tokenizer, rows) < 0.7 * before
    assert all(
        not module.training or module.p == 0.0 for module in trained.modules() if isinstance(module, torch.nn.Dropout)
    )
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert AutoTokenizer.from_pretrained(tmp_path / "model").vocab_size == tokenizer.vocab_size
    assert torch.equal(reloaded.lm_head.weight, trained.lm_head.weight.cpu())
