"""Conflicting objectives for the strong student: the settings of the weak-to-strong deception experiments.

Harmlessness is the target dimension the weak model supervises. A conflict pulls the student toward the harmful (more
"helpful") response of a pair:

- `none`: the student trains on the weak harmlessness labels only.
- `explicit` (strength `alpha`): an extra loss term that rewards the student whenever it already prefers the harmful
  response ([`w2s_align.losses.explicit_conflict_loss`]). Which response is harmful comes from the pair's
  `conflict_label` column (the conflicting objective's preference for `chosen`), which the pipeline adds to a
  conflicted student's pairs only: this term is the experiment's manipulation, the one place a student's training
  reads the ground truth, by design (Yang et al.).
- `implicit` (ratio `r`): helpfulness preference pairs with their own (human) labels are mixed into the student's
  training set, `r` helpful pairs per weakly labelled harmless pair ([`mix_implicit_conflict`]).

Either conflict has a **random-direction** control (`direction="random"`): the same pressure toward a response chosen
by a seeded coin toss per pair ([`coin_toss`]) instead of the harmful one (explicit: the conflict label; implicit: the
helpfulness pairs' labels), with the same trigger rule, strength and number of pairs. What the conflict does beyond
its control is what its harmful direction does.

The functions here are the data side of the conflicts (conflict labels, helpfulness pairs, mixing): plain `datasets`
work any trainer can use; a student's setting is a [`w2s_align.options.ConflictSetting`], and the explicit term
itself is a loss, in [`w2s_align.losses`].

Example:

```python
>>> from datasets import Dataset
>>> from w2s_align.conflicts import conflict_labels
>>> pairs = Dataset.from_dict({"id": ["a", "b"], "chosen": ["x", "y"], "rejected": ["u", "v"], "gt_label": [1.0, 0.0]})
>>> list(conflict_labels(pairs)["conflict_label"])  # the response the ground truth finds harmful
[0.0, 1.0]
```
"""

from __future__ import annotations

import hashlib

from datasets import Dataset, concatenate_datasets

from .data import GT_LABEL, MESSAGE_COLUMNS, random_orientation, swap_responses
from .errors import W2SInputError
from .options import CONFLICT_LABEL, SOFT_LABEL


def coin_toss(pairs: Dataset, seed: int) -> list[float]:
    """A fair coin toss per pair choosing one of its two responses: 1.0 where it chose `chosen`, 0.0 where it chose
    `rejected`. The toss depends on `seed`, the pair's `id` and its two texts, not on which is stored first, so a
    swapped pair keeps the same chosen response (the label follows it) and a subset keeps its tosses: the random
    direction of a control conflict."""

    def toss(pair_id: str, chosen: str, rejected: str) -> float:
        first = min(chosen, rejected)  # the response the coin's heads stands for, whatever the storage order
        heads = hashlib.sha1(f"coin\x00{seed}\x00{pair_id}".encode()).digest()[0] % 2 == 0
        return float(heads == (chosen == first)) if chosen != rejected else 0.5

    return [toss(*row) for row in zip(pairs["id"], pairs["chosen"], pairs["rejected"])]


def conflict_labels(pairs: Dataset, direction: str = "harmful", seed: int = 0) -> Dataset:
    """`pairs` (training pairs with their `gt_label`) with a `conflict_label`: `1 - gt_label` (the explicit conflict
    prefers the response the ground truth finds harmful), or for the `random` direction a seeded coin toss."""
    labels = coin_toss(pairs, seed) if direction == "random" else [1.0 - label for label in pairs[GT_LABEL]]
    return pairs.add_column(CONFLICT_LABEL, labels)


def random_direction(helpful: Dataset, seed: int) -> Dataset:
    """Helpfulness pairs with their labels replaced by a seeded coin toss: the implicit conflict's control, the same
    texts mixed in the same number with no preference in their labels."""
    return helpful.remove_columns(SOFT_LABEL).add_column(SOFT_LABEL, coin_toss(helpful, seed))


def helpfulness_pairs(pairs: Dataset, seed: int) -> Dataset:
    """Pairs labelled by helpfulness with hard labels (`soft_label` 1.0 or 0.0), stored in a seeded random order.

    Rows with `helpful_label == 0` (the harmless response is the less helpful one) prefer `rejected`; rows without the
    column are taken as preferring `chosen` (e.g. HH-RLHF helpful-base, where `chosen` is the more helpful response).
    """

    def orient(row: dict) -> dict:
        swap = row.get("helpful_label", 1) == 0
        return {**(swap_responses(row) if swap else {}), "objective": "helpful"}

    drop = [column for column in ("helpful_label", GT_LABEL) if column in pairs.column_names]
    oriented = pairs.map(orient, remove_columns=drop, desc="Orienting pairs by helpfulness")
    return random_orientation(oriented, seed, label=SOFT_LABEL)


def check_same_format(harmless: Dataset, helpful: Dataset) -> None:
    """Stop when one set of pairs is conversational (has messages) and the other is not: mixed, the conversational
    pairs would lose their messages and be read in their plain rendering, unlike everywhere else in the run."""
    data, helpful_data = (MESSAGE_COLUMNS[0] in pairs.column_names for pairs in (harmless, helpful))
    if data != helpful_data:
        raise W2SInputError(
            "the implicit conflict mixes the harmlessness pairs with the helpfulness pairs, but only "
            f"{'data' if data else 'conflicts.helpful'} is conversational (lists of messages): give both in one format"
        )


def mix_implicit_conflict(harmless: Dataset, helpful: Dataset, ratio: float, seed: int = 0) -> Dataset:
    """The student's training set under the implicit conflict: the weakly labelled harmless pairs plus
    `round(ratio * len(harmless))` helpfulness pairs, shuffled with `seed`.

    Both datasets need the columns the trainer reads (`chosen_ids`/`rejected_ids` or texts, and `soft_label`); only
    the columns they share are kept, plus `objective` (`harmless` or `helpful`).
    """
    check_same_format(harmless, helpful)
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
