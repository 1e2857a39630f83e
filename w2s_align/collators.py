"""Collation of soft labels, shared by the weak-to-strong trainers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .options import LABEL_COLUMNS


@dataclass
class SoftLabelCollator:
    """Wraps a TRL preference collator and adds the batch's label tensors: `soft_label` (the supervisor's
    probability that `chosen` is better) and, for the explicit conflict, `conflict_label`, when the examples have them
    (`columns`; the classifier wraps transformers' padding collator with `soft_label` and `hard_label`).

    Example:

    ```python
    >>> from trl.trainer.reward_trainer import DataCollatorForPreference
    >>> collator = SoftLabelCollator(DataCollatorForPreference(pad_token_id=0))
    >>> batch = collator([{"chosen_ids": [1, 2], "rejected_ids": [3], "soft_label": 0.8}])
    >>> batch["soft_label"]
    tensor([0.8000])
    ```
    """

    collator: Callable[[list[dict[str, Any]]], dict[str, Any]]
    columns: tuple[str, ...] = LABEL_COLUMNS  # the classifier's: `soft_label` and `hard_label`

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        output = self.collator([{k: v for k, v in ex.items() if k not in self.columns} for ex in examples])
        for column in self.columns:
            labels = [example.get(column) for example in examples]
            if all(label is not None for label in labels):
                output[column] = torch.tensor([float(label) for label in labels])
        return output
