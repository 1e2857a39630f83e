"""Generative finetuning (Burns et al. 2023, section 5.2.2): language modeling on the task's texts before training.

Burns et al. make the task more salient to a strong model by finetuning it, without labels, as a language model on
the task's data before it learns from weak labels; the strong ceiling gets the same pass, so that PGR compares like
with like. Here a causal-LM rung with `generative.epochs > 0` first learns, once per seed, to predict every text of
the ground-truth and weak-to-strong splits: each prompt followed by each of its two responses, in no order that says
which is preferred. The test split's texts are left out, so that no model has read a test pair before it is scored.
The finetuned model is a cached stage (`lm-<rung>-seed<k>`); the rung's ceiling and students start from it, and
their cache keys name it.

Example:

```python
>>> from datasets import Dataset
>>> from w2s_align.generative import task_texts
>>> pairs = Dataset.from_dict({"prompt": ["Q: hi\\nA:"], "chosen": [" hello"], "rejected": [" go away"]})
>>> list(task_texts(pairs)["text"])
['Q: hi\\nA: hello', 'Q: hi\\nA: go away']
```
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase, set_seed
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from .device import default_device
from .distributed import whole_weights
from .errors import W2SInputError
from .models import load_rung_model, resolve_model_path
from .recipe import RungConfig
from .tracking import TrackerRun
from .verbosity import progress_enabled

# The texts whose language-modeling loss the stage records before and after (the first ones, in split order).
LOSS_SAMPLE = 256


def check_generative(rung: RungConfig) -> None:
    """Stop before training on a rung that cannot be finetuned generatively: not a causal LM, or adapters only."""
    config = AutoConfig.from_pretrained(resolve_model_path(rung.model), revision=rung.revision)
    # Encoders such as BERT have a causal-LM head class too; a masked-LM model type is an encoder, not a decoder.
    kind = config.model_type
    if kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise W2SInputError(
            f"ladder rung {rung.name!r}: generative finetuning needs a causal language model, and {rung.model!r} is "
            f"a {config.model_type!r} model; set 'ladder.{rung.name}.generative.epochs' to 0"
        )
    if rung.training.lora is not None or rung.training.load_in_4bit:
        raise W2SInputError(
            f"ladder rung {rung.name!r}: generative finetuning trains the whole model, which a LoRA or 4-bit rung "
            "does not; set 'generative.epochs' to 0 or train the rung in full"
        )


def task_texts(pairs: Dataset) -> Dataset:
    """A `text` dataset of each pair's prompt followed by each of its responses (chosen first, then rejected: every
    pair contributes both, so the order says nothing)."""
    texts = []
    for prompt, chosen, rejected in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"]):
        texts += [prompt + chosen, prompt + rejected]
    return Dataset.from_dict({"text": texts})


@torch.no_grad()
def language_modeling_loss(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, batch_size: int = 16
) -> float:
    """Mean next-token cross-entropy (nats per predicted token) of `model` on `texts`, truncated to `max_length`."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size],
            truncation=True,
            max_length=max_length,
            padding=True,
            padding_side="right",
            return_tensors="pt",
        ).to(device)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        targets = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += loss.item()
        count += int((targets != -100).sum())
    return total / max(count, 1)


def generative_finetune(
    rung: RungConfig,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Dataset,
    seed: int,
    stage_dir: Path,
    tracker: TrackerRun,
) -> dict[str, Any]:
    """Finetune `rung` as a language model on the texts of `pairs` and save it in `stage_dir/model`; return the stage
    summary (the language-modeling loss on the first [`LOSS_SAMPLE`] texts before and after)."""
    from .sft import W2SSFTConfig, supervised_finetune

    settings = rung.training
    texts = task_texts(pairs)
    sample = texts["text"][:LOSS_SAMPLE]
    set_seed(seed)
    model = load_rung_model(rung, AutoModelForCausalLM)
    before = language_modeling_loss(model.to(default_device()), tokenizer, sample, settings.max_length)
    args = W2SSFTConfig(
        output_dir=str(stage_dir / "checkpoints"),
        num_train_epochs=rung.generative.epochs,
        learning_rate=rung.generative.learning_rate or settings.learning_rate,
        per_device_train_batch_size=settings.per_device_train_batch_size,
        train_sampling_strategy=settings.train_sampling_strategy,
        disable_dropout=True,  # as the reward and DPO trainers do: the same model on any number of processes
        max_length=settings.max_length,
        seed=seed,
        save_strategy="no",
        disable_tqdm=not progress_enabled(),
        **tracker.trainer_kwargs(),
    )
    with tracker.active():
        supervised_finetune(model, tokenizer, texts, args, stage_dir / "model")
    with whole_weights():  # measured on the saved model, whole on every process whatever sharding trained it
        model = load_rung_model(started_from(rung, stage_dir / "model"), AutoModelForCausalLM)
    after = language_modeling_loss(model.to(default_device()), tokenizer, sample, settings.max_length)
    return {
        "num_texts": texts.num_rows,
        "lm_loss_before": round(before, 4),
        "lm_loss_after": round(after, 4),
        "perplexity_after": round(math.exp(after), 2),
    }


def started_from(rung: RungConfig, model_dir: Path) -> RungConfig:
    """`rung` as it trains after generative finetuning: its model is the finetuned one (already cut to its layers,
    its weights no longer random)."""
    return dataclasses.replace(rung, model=str(model_dir), revision=None, num_layers=None, random_init=False)
