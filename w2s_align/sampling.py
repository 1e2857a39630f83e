"""Length-grouped training batches of preference pairs: little padding, the randomness SGD needs kept.

A batch of pairs is padded to its longest sequence, so random batches of short and long pairs spend much of their
compute on pad tokens (about half on single-turn HH-RLHF). [`PairLengthGroupedSampler`] draws each epoch's order from
the seed: it shuffles the pairs, cuts the shuffled list into groups of `group_batches` batches, sorts each group by
length and cuts it into batches, then shuffles the batches (the longest first, so that an out-of-memory error shows
at the first step). Which pairs share a batch and the order of the batches change with the seed and the epoch; only
the padding goes. transformers' own length grouping needs an `input_ids` column, which pair datasets do not have, and
keeps the batches of each group in order of length; TRL 1.16 offers no padding-free path for these trainers (DPO's
`padding_free` falls back to padding).

The W2S trainers draw TRL's random batches by default (`train_sampling_strategy="random"`); `"group_by_length"` opts
into these batches (the pipeline's recipes do). Evaluation and `predict()` read the pairs in the dataset's order
whatever the training batches, as TRL's trainers do.

Example:

```python
>>> from w2s_align.sampling import PairLengthGroupedSampler
>>> lengths = [5, 50, 7, 48, 6, 49, 8, 47]
>>> order = list(PairLengthGroupedSampler(lengths, batch_size=2, seed=0, group_batches=4))
>>> sorted(order)  # every pair once per epoch
[0, 1, 2, 3, 4, 5, 6, 7]
>>> batches = [sorted(order[i : i + 2]) for i in range(0, 8, 2)]
>>> batches[0], sorted(batches)  # the longest batch first; each batch pairs similar lengths
([1, 5], [[0, 4], [1, 5], [2, 6], [3, 7]])
```
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow.compute as pc
import torch
from datasets import Dataset
from torch.utils.data import Sampler, SequentialSampler
from transformers.trainer_utils import has_length

from .options import SamplingStrategy

# Token-id columns of the pairs as the trainers see them: shared by both sequences, and one per response.
SHARED_COLUMNS = ("prompt_ids",)
RESPONSE_COLUMNS = ("chosen_ids", "rejected_ids")


def pair_lengths(dataset: Dataset) -> list[int]:
    """A pair's length is its longer sequence: the prompt (when tokenized apart) plus the longer response; a text
    row's (SFT) is its `input_ids`. Raises `ValueError` on a dataset without token ids (a vision dataset, which TRL's
    collator tokenizes batch by batch)."""
    columns = dataset.column_names
    if not set(RESPONSE_COLUMNS) <= set(columns) and "input_ids" not in columns:
        raise ValueError(
            "train_sampling_strategy='group_by_length' groups the pairs by their token ids, and this dataset has none "
            f"(its columns: {', '.join(columns)}; a vision dataset is tokenized batch by batch): use 'random', TRL's "
            "default"
        )
    arrow = dataset.with_format("arrow")

    def lengths(column: str):
        return pc.list_value_length(arrow[column])

    if "input_ids" in columns and not set(RESPONSE_COLUMNS) & set(columns):
        return lengths("input_ids").to_pylist()

    total = pc.max_element_wise(*(lengths(column) for column in RESPONSE_COLUMNS))
    for column in SHARED_COLUMNS:
        if column in columns:
            total = pc.add(total, lengths(column))
    return total.to_pylist()


def length_order(lengths: Sequence[int]) -> list[int]:
    """Indices of `lengths`, longest first; equal lengths keep their order."""
    return sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)


class PairLengthGroupedSampler(Sampler[int]):
    """Indices of one epoch, in batches of pairs of similar length (see the module docstring).

    Args:
        lengths (`Sequence[int]`):
            The length of every pair.
        batch_size (`int`):
            Pairs per batch as the sampler groups them: the pairs of one optimizer step, over all processes.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the shuffles; the epoch (`set_epoch`) is added, so a resumed run sees the same order.
        group_batches (`int`, *optional*):
            Batches per length group: larger groups pad less and mix less. Defaults to transformers' choice, 50 or
            as many as leave 4 groups, whichever is smaller.
        rows (`Sequence[int]`, *optional*):
            The dataset's row of each length, when `lengths` are not in the dataset's order: the sampler yields these
            rows. Defaults to the positions in `lengths`.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        group_batches: int | None = None,
        rows: Sequence[int] | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if rows is not None and len(rows) != len(lengths):
            raise ValueError(f"rows must give one row per length: {len(rows)} rows for {len(lengths)} lengths")
        self.rows = None if rows is None else list(rows)
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_batches = group_batches or max(min(len(self.lengths) // (batch_size * 4), 50), 1)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.group_batches * self.batch_size
        batches = []
        for start in range(0, len(order), size):
            group = sorted(order[start : start + size], key=self.lengths.__getitem__, reverse=True)
            batches += [group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)]
        # A short batch stays last: the data loader cuts the indices into fixed-size batches.
        short = [batches.pop()] if batches and len(batches[-1]) < self.batch_size else []
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()] + short
        if batches:
            longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b][0]])
            if len(batches[longest]) == len(batches[0]):
                batches[0], batches[longest] = batches[longest], batches[0]
        order = [index for batch in batches for index in batch]
        return iter(order if self.rows is None else [self.rows[index] for index in order])


@dataclass
class LengthGroupingArguments:
    """Config mixin: `train_sampling_strategy` with `"group_by_length"` for pairs ([`PairLengthGroupedSampler`]);
    TRL's random batches by default."""

    train_sampling_strategy: SamplingStrategy = field(
        default="random",
        metadata={
            "help": "random: random batches, as in TRL (the default); group_by_length: batches of pairs of similar "
            "length, shuffled by the seed every epoch (little padding); sequential: the dataset's order."
        },
    )


class LengthGroupedTraining:
    """Trainer mixin: with `train_sampling_strategy="group_by_length"`, a [`PairLengthGroupedSampler`] over the
    tokenized training pairs; evaluation and prediction read the pairs in the dataset's order whatever the strategy.
    Put it before the TRL trainer in the bases."""

    def get_train_dataloader(self):
        if self.args.train_sampling_strategy == "group_by_length" and not isinstance(self.train_dataset, Dataset):
            # transformers would read a stream in its order without a word.
            raise ValueError(
                f"train_sampling_strategy='group_by_length' needs a `datasets.Dataset` to sort, not a "
                f"{type(self.train_dataset).__name__} (a stream is read in its order): use 'random' or 'sequential'"
            )
        return super().get_train_dataloader()

    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        args = self.args
        seed = args.data_seed if args.data_seed is not None else args.seed
        # Groups of one optimizer step's pairs, over all processes: the data loader then hands each process its part,
        # and a step trains on the same pairs whatever the number of processes.
        step = args.train_batch_size * args.world_size * args.gradient_accumulation_steps
        lengths = pair_lengths(dataset)
        if getattr(args, "precompute_ref_log_probs", False):
            # The DPO trainer scores the reference over the pairs sorted by length, and earlier versions kept them in
            # that order: shuffled from it, the batches are those they drew (the pipeline's cached stages).
            order = length_order(lengths)
            return PairLengthGroupedSampler([lengths[i] for i in order], step, seed, rows=order)
        return PairLengthGroupedSampler(lengths, step, seed)

    def _get_eval_sampler(self, eval_dataset):
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_eval_sampler(eval_dataset)
        # The dataset's order, as transformers reads it without length grouping (its own would sort by `input_ids`):
        # `predict()` returns the rows in order, and a `compute_metrics` may pair them with the dataset's.
        if eval_dataset is None or not has_length(eval_dataset):
            return None
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None
