"""Conflicting objectives for the strong student: the settings of the weak-to-strong deception experiments.

Harmlessness is the target dimension the weak model supervises. A conflict pulls the student toward the harmful (more
"helpful") response of a pair:

- `none`: the student trains on the weak harmlessness labels only.
- `explicit` (strength `alpha`): an extra loss term that rewards the student whenever it already prefers the harmful
  response ([`explicit_conflict_loss`]). It treats `chosen` as the harmless response, as in every harmlessness split
  of w2s_align.
- `implicit` (ratio `r`): helpfulness preference pairs with their own (human) labels are mixed into the student's
  training set, `r` helpful pairs per weakly labelled harmless pair ([`mix_implicit_conflict`]).

The functions here are trainer-agnostic: the reward trainer adds the explicit term to its loss, and the data side
(helpfulness pairs, mixing) is plain `datasets` work any trainer can use.

Example:

```python
>>> import torch
>>> from w2s_align.conflicts import explicit_conflict_loss
>>> # pair 1 prefers the harmless response (no term), pair 2 already prefers the harmful one
>>> round(explicit_conflict_loss(torch.tensor([1.0, -1.0]), alpha=0.5).item(), 4)  # 0.5 * log(1 + e^-1) / 2
0.0783
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from datasets import Dataset, concatenate_datasets

ConflictKind = Literal["none", "explicit", "implicit"]
CONFLICT_KINDS: tuple[str, ...] = get_args(ConflictKind)


@dataclass(frozen=True)
class ConflictSetting:
    """One conflict setting of a student: its kind and strength (`alpha` for explicit, `ratio` for implicit)."""

    kind: str = "none"
    strength: float = 0.0

    def __post_init__(self):
        if self.kind not in CONFLICT_KINDS:
            raise ValueError(f"conflict kind must be one of {CONFLICT_KINDS}, got {self.kind!r}")

    @property
    def label(self) -> str:
        """Short name used in model keys and reports: `none`, `explicit-0.5`, `implicit-1`."""
        return "none" if self.kind == "none" else f"{self.kind}-{self.strength:g}"


def explicit_conflict_loss(delta: torch.Tensor, alpha: float) -> torch.Tensor:
    """`alpha * mean_i c_i * BCE(sigmoid(delta_i), 0)`, with `c_i = 1` when the model already prefers `rejected`.

    `delta = r(chosen) - r(rejected)` where `chosen` is the harmless response. `BCE(sigmoid(d), 0) = softplus(d)`: the
    term pushes the reward of the harmful response further up on exactly the pairs where it is already ahead.
    """
    already_harmful = (delta.detach() < 0).float()
    return alpha * (already_harmful * F.softplus(delta.float())).mean()


def helpfulness_pairs(pairs: Dataset) -> Dataset:
    """Orient pairs by helpfulness (`chosen` = the more helpful response) with a hard label `soft_label = 1.0`.

    Rows with `helpful_label == 0` (the harmless response is the less helpful one) are swapped; rows without the
    column are taken as already oriented by helpfulness (e.g. HH-RLHF helpful-base).
    """

    def orient(row: dict) -> dict:
        swap = row.get("helpful_label", 1) == 0
        chosen, rejected = (row["rejected"], row["chosen"]) if swap else (row["chosen"], row["rejected"])
        return {"chosen": chosen, "rejected": rejected, "soft_label": 1.0, "objective": "helpful"}

    return pairs.map(orient, desc="Orienting pairs by helpfulness")


def mix_implicit_conflict(harmless: Dataset, helpful: Dataset, ratio: float, seed: int = 0) -> Dataset:
    """The student's training set under the implicit conflict: the weakly labelled harmless pairs plus
    `round(ratio * len(harmless))` helpfulness pairs, shuffled with `seed`.

    Both datasets need the columns the trainer reads (`chosen_ids`/`rejected_ids` or texts, and `soft_label`); only
    the columns they share are kept, plus `objective` (`harmless` or `helpful`).
    """
    wanted = round(ratio * harmless.num_rows)
    if wanted > helpful.num_rows:
        raise ValueError(f"the implicit conflict needs {wanted} helpfulness pairs, only {helpful.num_rows} are given")
    helpful = helpful.shuffle(seed=seed).select(range(wanted))
    if "objective" not in harmless.column_names:
        harmless = harmless.add_column("objective", ["harmless"] * harmless.num_rows)
    if "objective" not in helpful.column_names:
        helpful = helpful.add_column("objective", ["helpful"] * helpful.num_rows)
    shared = [column for column in harmless.column_names if column in helpful.column_names]
    mixed = concatenate_datasets([harmless.select_columns(shared), helpful.select_columns(shared)])
    return mixed.shuffle(seed=seed)
