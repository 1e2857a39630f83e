"""Weak ensembles: several weak supervisors (rungs, seeds or both) combined into one teacher.

Each member is a ceiling trained on the ground-truth split that labels the weak-to-strong split as any weak teacher
does; the ensemble's probability that `chosen` is better is the sigmoid of the members' mean log-odds (`logodds`,
probabilities clipped to [1e-6, 1 - 1e-6]) or their mean probability (`probability`). Both commute with swapping a
pair (every member's `p -> 1 - p` gives the ensemble's `p -> 1 - p`). The ensemble's own test predictions are combined
the same way, so its students' reports measure PGR and deception against the ensemble as the weak model.

Example:

```python
>>> import numpy as np
>>> from w2s_align.ensembles import combine
>>> combine(np.array([[0.9, 0.5], [0.6, 0.2]]), "probability").round(2).tolist()
[0.75, 0.35]
```
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset

from .options import SOFT_LABEL, EnsembleCombine
from .reward_predictions import CARRIED_COLUMNS

CLIP = 1e-6


def combine(probabilities: np.ndarray, how: EnsembleCombine) -> np.ndarray:
    """The ensemble's probabilities from its members' (`[members, pairs]`)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if how == "probability":
        return probabilities.mean(axis=0)
    p = probabilities.clip(CLIP, 1 - CLIP)
    return 1 / (1 + np.exp(-np.log(p / (1 - p)).mean(axis=0)))


def _aligned(members: list[Dataset], column: str) -> np.ndarray:
    """`column` of every member, each in the order of the first member's ids."""
    ids = members[0]["id"]
    out = []
    for member in members:
        row = {row_id: i for i, row_id in enumerate(member["id"])}
        if set(row) != set(ids):
            raise ValueError("the members of an ensemble scored different pairs")
        values = member[column]
        out.append([values[row[row_id]] for row_id in ids])
    return np.asarray(out, dtype=np.float64)


def ensemble_predictions(members: list[Dataset], how: EnsembleCombine) -> Dataset:
    """Per-example test predictions of the ensemble (`id`, `margin`, `prob_chosen`, `correct` and the carried
    columns), from its members' predictions."""
    p = combine(_aligned(members, "prob_chosen"), how)
    margin = np.log(p.clip(CLIP, 1 - CLIP) / (1 - p.clip(CLIP, 1 - CLIP)))
    first = members[0]
    columns = {"id": first["id"], "margin": margin.tolist(), "prob_chosen": p.tolist(), "correct": (p > 0.5).tolist()}
    columns |= {name: first[name] for name in CARRIED_COLUMNS if name in first.column_names}
    return Dataset.from_dict(columns)


def ensemble_labels(members: list[Dataset], how: EnsembleCombine, labeler_id: str) -> Dataset:
    """The ensemble's soft labels of the split its members labelled (the first member's rows, its `soft_label`
    combined, its `labeler` the ensemble's)."""
    soft = combine(_aligned(members, SOFT_LABEL), how)
    labels = members[0].remove_columns(
        [c for c in (SOFT_LABEL, "labeler", "reward_chosen", "reward_rejected") if c in members[0].column_names]
    )
    return labels.add_column(SOFT_LABEL, soft.tolist()).add_column("labeler", [labeler_id] * labels.num_rows)
