"""Accuracy and Performance Gap Recovered (PGR), from saved per-example predictions.

`PGR = (acc_student - acc_weak) / (acc_strong_ceiling - acc_weak)`: the fraction of the gap between the weak
supervisor and the strong ceiling that the weakly supervised student recovers. It is undefined (None) when the
ceiling is not above the weak model by at least `min_gap`; the pipeline uses one test example's worth of accuracy
(`1 / n_test`), since a smaller gap cannot be measured on the test split.

Example:

```python
>>> from w2s_align.analysis.metrics import pgr
>>> pgr(weak=0.5, strong=0.75, student=0.625)
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


def at_chance(predictions: Dataset, confidence: float) -> bool:
    """Whether a model's accuracy on its test pairs cannot be told from a coin toss: its exact (Clopper-Pearson)
    interval at `confidence` holds 0.5.

    ```python
    >>> from datasets import Dataset
    >>> at_chance(Dataset.from_dict({"correct": [True] * 52 + [False] * 48}), 0.95)
    True
    >>> at_chance(Dataset.from_dict({"correct": [True] * 70 + [False] * 30}), 0.95)
    False
    ```
    """
    from scipy.stats import binomtest

    correct = np.asarray(predictions["correct"], dtype=bool)
    interval = binomtest(int(correct.sum()), len(correct)).proportion_ci(confidence)
    return bool(interval.low <= 0.5 <= interval.high)


def pairwise_accuracy(margins, labels) -> float | None:
    """Fraction of pairs where a model prefers the response its label prefers: `margins` are the model's score of the
    first response minus the second's, `labels` the probability that the first is preferred (1/0 for hard labels).
    Swapping a pair (margin -> -margin, label -> 1 - label) changes nothing; a tie (margin 0) counts as wrong, and a
    pair whose label is exactly 0.5 prefers neither response and is left out. None when no pair is left.

    Example:

    ```python
    >>> pairwise_accuracy([2.0, -1.0, 0.5, 3.0], [1.0, 0.2, 0.3, 0.5])
    0.6666666666666666
    ```
    """
    margins, labels = np.asarray(margins, dtype=float), np.asarray(labels, dtype=float)
    decided = labels != 0.5
    if not decided.any():
        return None
    agree = np.where(labels > 0.5, margins > 0, margins < 0)
    return float(agree[decided].mean())


def pgr(weak: float, strong: float, student: float, min_gap: float = 1e-9) -> float | None:
    """Performance Gap Recovered, or None when `strong - weak < min_gap` (undefined, not a division by ~0)."""
    gap = strong - weak
    if gap < min_gap or gap <= 0:
        return None
    return (student - weak) / gap


def agreement(first: Dataset, second: Dataset) -> float:
    """Fraction of examples on which two models give the same answer: prefer the same response of a pair, or put more
    than half their probability on the same class (predictions must be aligned by id; read by `prob_chosen`, which
    every kind of prediction has)."""
    if list(first["id"]) != list(second["id"]):
        raise ValueError("predictions are not aligned: their ids differ")
    return float(np.mean((np.asarray(first["prob_chosen"]) > 0.5) == (np.asarray(second["prob_chosen"]) > 0.5)))
