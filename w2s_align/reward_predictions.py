"""Per-example predictions of a reward model on the test split, saved so any metric can be recomputed later.

Each row: `id`, `reward_chosen`, `reward_rejected`, `margin` (= chosen - rejected), `prob_chosen`
(`sigmoid(margin)`, the model's confidence that `chosen` is preferred) and `correct` (`margin > 0`; a tie counts
as wrong), plus the pair's `kind` and `helpful_label` when the data has them.
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .labeling import score_pairs

CARRIED_COLUMNS = ("kind", "helpful_label")


def predict_pairs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Dataset,
    batch_size: int = 64,
    max_length: int = 512,
) -> Dataset:
    """Score every pair and return the per-example predictions (see the module docstring)."""
    scored = score_pairs(model, tokenizer, pairs, batch_size, max_length)
    margin = np.asarray(scored["reward_chosen"]) - np.asarray(scored["reward_rejected"])
    columns = {
        "id": scored["id"],
        "reward_chosen": scored["reward_chosen"],
        "reward_rejected": scored["reward_rejected"],
        "margin": margin.tolist(),
        "prob_chosen": (1 / (1 + np.exp(-margin))).tolist(),
        "correct": (margin > 0).tolist(),
    }
    for name in CARRIED_COLUMNS:
        if name in scored.column_names:
            columns[name] = scored[name]
    return Dataset.from_dict(columns)
