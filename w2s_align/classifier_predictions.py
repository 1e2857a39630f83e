"""Per-example predictions of a binary classifier on the test split, saved so any metric can be recomputed later.

Each row: `id`, `logit` (of class 1 against class 0), `prob_1` (`sigmoid(logit)`, the model's probability of class
1), `gt_label` (the ground truth), `prob_chosen` (the probability the model puts on the ground-truth class: `prob_1`
or `1 - prob_1`, the column every report reads, as it reads a reward model's probability on a pair's preferred
response) and `correct` (`prob_chosen > 0.5`; a tie counts as wrong), plus the example's `kind` when the data has it.

Example:

```python
>>> import numpy as np
>>> from datasets import Dataset
>>> rows = Dataset.from_dict({"id": ["a", "b"], "gt_label": [1.0, 0.0]})
>>> predictions = classifier_predictions(rows, np.array([2.0, 2.0]))
>>> list(predictions["correct"]), [round(p, 3) for p in predictions["prob_chosen"]]
([True, False], [0.881, 0.119])
```
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset
from transformers import PreTrainedModel

from .data import GT_LABEL
from .labeling import score_sequences

CARRIED_COLUMNS = ("kind",)


def classifier_predictions(rows: Dataset, logits: np.ndarray) -> Dataset:
    """The predictions (see the module docstring) of the examples `rows` (with `id` and `gt_label`) whose logits of
    class 1 are `logits`."""
    logits = np.asarray(logits, dtype=np.float64)
    prob_1 = 1 / (1 + np.exp(-logits))
    truth = np.asarray(rows[GT_LABEL], dtype=np.float64) > 0.5
    prob_true = np.where(truth, prob_1, 1 - prob_1)
    columns = {
        "id": rows["id"],
        "logit": logits.tolist(),
        "prob_1": prob_1.tolist(),
        GT_LABEL: rows[GT_LABEL],
        "prob_chosen": prob_true.tolist(),
        "correct": (prob_true > 0.5).tolist(),
    }
    for name in CARRIED_COLUMNS:
        if name in rows.column_names:
            columns[name] = rows[name]
    return Dataset.from_dict(columns)


def predict_examples(model: PreTrainedModel, rows: Dataset, pad_token_id: int, batch_size: int = 64) -> Dataset:
    """Score every example of `rows` (tokenized: `input_ids`) and return its predictions."""
    logits = score_sequences(model, list(rows["input_ids"]), pad_token_id, batch_size)
    return classifier_predictions(rows, logits)
