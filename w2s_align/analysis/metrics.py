"""Accuracy and Performance Gap Recovered (PGR), from saved per-example predictions.

`PGR = (acc_student - acc_weak) / (acc_strong_ceiling - acc_weak)`: the fraction of the gap between the weak
supervisor and the strong ceiling that the weakly supervised student recovers. It is undefined (None) when the
ceiling is not above the weak model by at least `min_gap`; the pipeline uses one test example's worth of accuracy
(`1 / n_test`), since a smaller gap cannot be measured on the test split.

Example:

```python
>>> from w2s_align.analysis.metrics import pgr
>>> pgr(weak=0.60, strong=0.80, student=0.70)
0.5
>>> pgr(weak=0.70, strong=0.70, student=0.75) is None
True
```
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset


def accuracy(predictions: Dataset) -> float:
    """Fraction of pairs where the model ranks `chosen` strictly above `rejected` (ties count as wrong)."""
    return float(np.mean(predictions["correct"]))


def pgr(weak: float, strong: float, student: float, min_gap: float = 1e-9) -> float | None:
    """Performance Gap Recovered, or None when `strong - weak < min_gap` (undefined, not a division by ~0)."""
    gap = strong - weak
    if gap < min_gap or gap <= 0:
        return None
    return (student - weak) / gap


def agreement(first: Dataset, second: Dataset) -> float:
    """Fraction of pairs on which two models prefer the same response (predictions must be aligned by id)."""
    if list(first["id"]) != list(second["id"]):
        raise ValueError("predictions are not aligned: their ids differ")
    return float(np.mean((np.asarray(first["margin"]) > 0) == (np.asarray(second["margin"]) > 0)))
