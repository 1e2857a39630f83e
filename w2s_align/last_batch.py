"""The last batch of an epoch, trained as on one process whatever the number of processes.

When an epoch's pairs do not fill its last optimizer step, accelerate (`even_batches`, its default, which TRL and
transformers keep) gives every process a full batch anyway, filled with pairs from the epoch's start: those pairs are
trained twice, and each process averages its own batch, so a process holding 4 real pairs weighs as much as one
holding 8. On one process the step is the mean over its real pairs. [`LastBatchWeights`] gives the pairwise trainers
per-pair weights for that step, 0 for the filling and `processes / real pairs` for the others, so that the weighted
sums the processes average are that mean; [`LastBatchLabels`] takes the filling out of a token loss (SFT) and its
token count. A run then trains the same model on any number of processes, not only when the split is a multiple of
the global batch.

Example:

```python
>>> from w2s_align.last_batch import pair_weights
>>> # 12 real pairs in a last step of 2 processes x 8: process 0 holds 8 of them, process 1 holds 4 and 4 fillers
>>> pair_weights(real=12, process=1, processes=2, pairs=8).tolist()
[0.1666666716337204, 0.1666666716337204, 0.1666666716337204, 0.1666666716337204, 0.0, 0.0, 0.0, 0.0]
```
"""

from __future__ import annotations

import torch

# The key the last batch of an epoch carries from `get_batch_samples` to `compute_loss`: (real pairs in the step,
# this process's index, processes).
LAST_BATCH = "w2s_last_batch"


def pair_weights(real: int, process: int, processes: int, pairs: int, device=None) -> torch.Tensor:
    """Weights of this process's `pairs` in a last step of `real` pairs over all processes: accelerate hands the
    step's pairs out in order, `pairs` to a process, and fills the rest with pairs from the epoch's start."""
    mine = min(max(real - process * pairs, 0), pairs)
    return (torch.arange(pairs, device=device) < mine).float() * (processes / real)


def filled_step(trainer) -> tuple[int, int, int] | None:
    """`(real pairs, process, processes)` when the batch `trainer` just fetched is the filled last step of an epoch,
    else None. The data loader knows its end one batch ahead: the flag is set once the last batch has been fetched.
    The real pairs are counted here: accelerate's own count (`gradient_state.remainder`) is lost in an epoch resumed
    from a checkpoint, whose skipping sampler has no batch size."""
    accelerator, args = trainer.accelerator, trainer.args
    if accelerator.num_processes == 1 or not accelerator.gradient_state.end_of_dataloader:
        return None
    if args.dataloader_drop_last or not accelerator.even_batches:  # no filling: the last step is dropped or short
        return None
    try:
        real = len(trainer.train_dataset) % (args.per_device_train_batch_size * accelerator.num_processes)
    except TypeError:  # an iterable dataset: accelerate dispatches its batches whole
        return None
    return (real, accelerator.process_index, accelerator.num_processes) if real else None


class LastBatchWeights:
    """Trainer mixin for pairwise losses: `self.pair_weights(inputs)` in `compute_loss` is None for a
    full step and the weights of [`pair_weights`] for the filled last step of an epoch (its loss is then the weighted
    sum of the pairs' losses, not their mean). Put it before the TRL trainer in the bases."""

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        tag = filled_step(self) if batches else None
        if tag is not None:
            batches[-1][LAST_BATCH] = tag
        return batches, num_items_in_batch

    @staticmethod
    def pair_weights(inputs: dict) -> torch.Tensor | None:
        """The weights of this batch's pairs (removing their key from `inputs`), or None: a plain mean. The batch
        holds its pairs as `input_ids` rows, every chosen row then every rejected one."""
        tag = inputs.pop(LAST_BATCH, None)
        if tag is None:
            return None
        rows = inputs["input_ids"]
        return pair_weights(*tag, pairs=len(rows) // 2, device=rows.device)


class LastBatchLabels:
    """Trainer mixin for token losses (`labels`, as TRL's `SFTTrainer` trains): the filling's labels become -100
    before transformers counts the step's tokens, so they leave both the loss and its normaliser (the tokens of all
    processes, `average_tokens_across_devices`). Put it before the TRL trainer in the bases."""

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        tag = filled_step(self) if batches else None
        if tag is None or "labels" not in batches[-1]:
            return batches, num_items_in_batch
        batch = batches[-1]
        filler = pair_weights(*tag, pairs=len(batch["labels"]), device=batch["labels"].device) == 0
        for key in ("labels", "shift_labels"):  # transformers counts `shift_labels` where a collator gives them
            if key in batch:
                batch[key] = batch[key].masked_fill(filler[:, None], -100)
        return batches, self._get_num_items_in_batch(batches, device)


__all__ = ["LAST_BATCH", "LastBatchLabels", "LastBatchWeights", "filled_step", "pair_weights"]
