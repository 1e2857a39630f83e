"""Weak labels: score preference pairs with a trained reward model and save the soft labels as a dataset.

A label filter keeps only the confident labels ([`filter_labels`]), as a mitigation of the deception experiments.

Scoring is the hot path of labeling and evaluation, so it runs without autograd, in large batches of sequences
sorted by length (little padding), in bf16 where the device supports it; results come back in the original order.
The soft label of a pair is `sigmoid(r(chosen) - r(rejected))`: the weak model's probability that `chosen` is
preferred.

Example:

```python
>>> from w2s_align.labeling import WeakLabeler, load_labels
>>> labeler = WeakLabeler(model, tokenizer, labeler_id="runs/x/weak-model")  # doctest: +SKIP
>>> labels = labeler.label(pairs)  # doctest: +SKIP
>>> labeler.save(labels, "runs/x/labels")  # doctest: +SKIP
>>> load_labels("runs/x/labels")["soft_label"][:3]  # doctest: +SKIP
```
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .artifacts import atomic_write_parquet, atomic_write_text
from .data import GT_LABEL
from .device import bf16_supported
from .distributed import sharded_map
from .models import tokenize_pairs
from .options import SOFT_LABEL, LabelFilter
from .verbosity import batch_starts

LABELS_FILE = "labels.parquet"
LABELS_META = "labels.json"


def pad_batch(sequences: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `input_ids` and `attention_mask` of a batch of token sequences."""
    length = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def score_sequences(
    model: PreTrainedModel, sequences: list[list[int]], pad_token_id: int, batch_size: int = 64
) -> np.ndarray:
    """Score of every token sequence, in input order: sorted by length, batched, no autograd, bf16 if supported. The
    score is a one-output model's logit (a reward), or a two-label classifier's logit of class 1 against class 0.

    Under several processes each scores a share of the sequences and the rewards are gathered back in order.
    """
    local = lambda shard: _score_local(model, shard, pad_token_id, batch_size).tolist()  # noqa: E731
    return np.asarray(sharded_map(local, sequences), dtype=np.float32)


@torch.inference_mode()
def _score_local(model: PreTrainedModel, sequences: list[list[int]], pad_token_id: int, batch_size: int) -> np.ndarray:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    use_bf16 = device.type != "cpu" and bf16_supported() and model.dtype == torch.float32
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]), reverse=True)
    rewards = np.empty(len(sequences), dtype=np.float32)
    with autocast:
        for start in batch_starts(len(order), batch_size, "scoring pairs"):
            index = order[start : start + batch_size]
            input_ids, attention_mask = pad_batch([sequences[i] for i in index], pad_token_id)
            logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
            score = logits[:, 1] - logits[:, 0] if logits.shape[-1] == 2 else logits[:, 0]
            rewards[index] = score.float().cpu().numpy()
    model.train(was_training)
    return rewards


def score_pairs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Dataset,
    batch_size: int = 64,
    max_length: int = 512,
) -> Dataset:
    """`pairs` plus `reward_chosen` and `reward_rejected` (tokenized here unless `chosen_ids` already exist)."""
    if "chosen_ids" not in pairs.column_names:
        pairs = tokenize_pairs(pairs, tokenizer, max_length)
    sequences = list(pairs["chosen_ids"]) + list(pairs["rejected_ids"])
    rewards = score_sequences(model, sequences, tokenizer.pad_token_id, batch_size)
    n = pairs.num_rows
    pairs = pairs.remove_columns(["chosen_ids", "rejected_ids"])
    return pairs.add_column("reward_chosen", rewards[:n].tolist()).add_column("reward_rejected", rewards[n:].tolist())


class WeakLabeler:
    """Labels preference pairs with a trained reward model.

    Args:
        model ([`~transformers.PreTrainedModel`]):
            A sequence classifier with one output (a reward model), e.g. a trained weak ceiling.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]):
            Its tokenizer.
        labeler_id (`str`):
            Identifies the model that made the labels (saved with every label).
        batch_size (`int`, *optional*, defaults to `64`):
            Sequences per forward pass (each pair is two sequences).
        max_length (`int`, *optional*, defaults to `512`):
            Longer sequences lose the start of their prompt.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        labeler_id: str,
        batch_size: int = 64,
        max_length: int = 512,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.labeler_id = labeler_id
        self.batch_size = batch_size
        self.max_length = max_length

    def label(self, pairs: Dataset) -> Dataset:
        """`pairs` with `reward_chosen`, `reward_rejected`, `soft_label` (probability that `chosen` is preferred)
        and `labeler`."""
        scored = score_pairs(self.model, self.tokenizer, pairs, self.batch_size, self.max_length)
        delta = torch.tensor(scored["reward_chosen"]) - torch.tensor(scored["reward_rejected"])
        soft = torch.sigmoid(delta).tolist()
        return scored.add_column(SOFT_LABEL, soft).add_column("labeler", [self.labeler_id] * scored.num_rows)

    def save(self, labels: Dataset, directory: str | Path) -> Path:
        """Write the label artifact (see [`save_labels`])."""
        return save_labels(labels, directory, self.labeler_id)


def save_labels(labels: Dataset, directory: str | Path, labeler_id: str) -> Path:
    """Write `labels.parquet` and `labels.json` (who labeled, how many, mean confidence) atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(labels, directory / LABELS_FILE)
    soft = np.asarray(labels[SOFT_LABEL])
    meta = {
        "labeler": labeler_id,
        "num_pairs": int(labels.num_rows),
        "mean_confidence": float(np.maximum(soft, 1 - soft).mean()),
    }
    if GT_LABEL in labels.column_names:  # a diagnostic for the report; students never read it
        meta["ground_truth_agreement"] = float(((soft > 0.5) == (np.asarray(labels[GT_LABEL]) > 0.5)).mean())
    atomic_write_text(directory / LABELS_META, json.dumps(meta, indent=2))
    return directory / LABELS_FILE


def load_labels(directory: str | Path) -> Dataset:
    """Load a saved label artifact (`labels.parquet` in `directory`) as a `datasets.Dataset`."""
    return Dataset.from_parquet(str(Path(directory) / LABELS_FILE))


def attach_labels(pairs: Dataset, labels: Dataset) -> Dataset:
    """`pairs` with the `soft_label` column of `labels`, which must label the same pairs in the same order."""
    if list(labels["id"]) != list(pairs["id"]):
        raise RuntimeError("the weak labels do not belong to these pairs (their ids differ)")
    return pairs.add_column(SOFT_LABEL, labels[SOFT_LABEL])


def filter_labels(pairs: Dataset, label_filter: LabelFilter, threshold: float, seed: int = 0) -> Dataset:
    """The pairs whose `soft_label` passes the filter (see `LabelFilter`); the oracle reads the pairs' `gt_label`;
    `random` keeps as many pairs as the confidence filter would, drawn by `seed` without looking at the labels (in
    the pairs' order)."""
    if label_filter == "none":
        return pairs
    if label_filter == "random":
        kept = filter_labels(pairs, "confidence", threshold).num_rows
        return pairs.select(np.sort(np.random.default_rng(seed).permutation(pairs.num_rows)[:kept]))
    oracle = label_filter == "oracle"

    def keep(row: dict) -> bool:
        label = row[SOFT_LABEL]
        return max(label, 1 - label) >= threshold and (not oracle or (label > 0.5) == (row[GT_LABEL] > 0.5))

    return pairs.filter(keep, desc=f"Filtering weak labels ({label_filter})")
