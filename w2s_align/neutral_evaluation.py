"""Evaluation during training that changes no result: a trainer mixin that restores the random number generators.

Each pass over a `DataLoader` draws a seed from torch's generator, so without it, evaluating a model in the middle of
training (`eval_strategy="steps"`) would move the dropout masks of every later step: how often a model is evaluated
would change the model. With it, `eval_strategy` and `eval_steps` are result-neutral (the pipeline leaves them out of
its stage hashes).

Example:

```python
>>> import torch
>>> from w2s_align.neutral_evaluation import preserved_rng_states
>>> state = torch.get_rng_state()
>>> with preserved_rng_states():
...     _ = torch.rand(3)
>>> torch.equal(torch.get_rng_state(), state)
True
```
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from .options import SOFT_LABEL


@contextlib.contextmanager
def preserved_rng_states() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's random number generators (CPU and CUDA) on exit."""
    cuda = torch.cuda.is_available()
    states = random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda and torch.cuda.get_rng_state_all()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda:
            torch.cuda.set_rng_state_all(states[3])


class NeutralEvaluation:
    """Trainer mixin: `evaluate` leaves every random number generator as it found it (see the module docstring), and
    a pair's prediction is its margin, its reference its label (what `compute_metrics` needs to score agreement with
    the labels; TRL's trainers return rewards or logits without labels). A trainer gives its margins by `pair_margins`.
    """

    def evaluate(self, *args, **kwargs):
        with preserved_rng_states():
            return super().evaluate(*args, **kwargs)

    def pair_margins(self, outputs) -> torch.Tensor:
        """The margin of each pair (chosen - rejected) from `compute_loss`'s outputs: each trainer that mixes this
        class in defines it (`W2SRewardTrainer` from its rewards, `W2SDPOTrainer` from its implicit rewards)."""
        raise NotImplementedError(f"{type(self).__name__} mixes in NeutralEvaluation without defining pair_margins")

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys: list[str] | None = None):
        inputs = self._prepare_inputs(inputs)
        labels = inputs.get(SOFT_LABEL)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        if prediction_loss_only:
            return loss.detach(), None, None
        margins = self.pair_margins(outputs)
        return loss.detach(), margins, torch.ones_like(margins) if labels is None else labels
