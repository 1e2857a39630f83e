"""Evaluation during training that changes no result: a trainer mixin that restores the random number generators.

Each pass over a `DataLoader` draws a seed from torch's generator, so without it, evaluating a model in the middle of
training (`eval_strategy="steps"`) would move the dropout masks of every later step: how often a model is evaluated
would change the model. With it, `eval_strategy` and `eval_steps` are result-neutral (the pipeline leaves them out of
its stage hashes).

Example:

```python
>>> import torch
>>> from w2s_align.validation import preserved_rng_states
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
    """Trainer mixin: `evaluate` leaves every random number generator as it found it (see the module docstring)."""

    def evaluate(self, *args, **kwargs):
        with preserved_rng_states():
            return super().evaluate(*args, **kwargs)
