"""Evaluation that changes no result and reports as TRL does: a trainer mixin that restores the random number
generators, and returns TRL's predictions with the weak-to-strong metrics beside them.

Each pass over a `DataLoader` draws a seed from torch's generator, so without it, evaluating a model in the middle of
training (`eval_strategy="steps"`) would move the dropout masks of every later step: how often a model is evaluated
would change the model. With it, `eval_strategy` and `eval_steps` are result-neutral (the pipeline leaves them out of
its stage hashes).

`predict()` and a user's `compute_metrics` receive what TRL's trainer gives them (for the reward trainer, each batch's
rewards, chosen rows then rejected ones, and no labels); the weak-to-strong `accuracy` (agreement with the labels over
the whole dataset) is added to the metrics beside the user's.

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
from typing import Any

import numpy as np
import torch
from transformers import EvalPrediction
from transformers.trainer_pt_utils import nested_detach
from trl import DPOTrainer

from .evaluate_metrics import compute_pairwise_accuracy
from .options import LABEL_COLUMNS, SOFT_LABEL

# What a DPO batch holds beside the policy's inputs: TRL's own keys, and the weak-to-strong label columns.
_DPO_NON_MODEL_KEYS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps", *LABEL_COLUMNS}


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
    """Trainer mixin: evaluation that changes no result, and TRL's metrics with the weak-to-strong ones beside them.

    - `evaluate` leaves every random number generator as it found it (see the module docstring).
    - `prediction_step` returns what TRL's trainer returns for a batch ([`trl_predictions`]), so that `predict()` and
      a `compute_metrics` receive TRL's predictions, as TRL calls it (not at all when none is given).
    - Beside them it keeps each pair's margin (`pair_margins`, which each trainer that mixes this class in defines)
      and label (1 without a `soft_label` column), and every evaluation and prediction adds the weak-to-strong metric
      to the metrics: `accuracy`, the agreement with the labels over the whole dataset (the `evaluate` module
      `pairwise_accuracy`, see [`w2s_align.evaluate_metrics`]). A metric of the same name that `compute_metrics`
      returns is kept instead.
    """

    # The margins and labels of the evaluation under way (gathered from every process), for the weak-to-strong metrics.
    _pair_predictions: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def evaluate(self, *args, **kwargs):
        with preserved_rng_states():
            return super().evaluate(*args, **kwargs)

    def pair_margins(self, outputs) -> torch.Tensor:
        """The margin of each pair (chosen - rejected) from `compute_loss`'s outputs: each trainer that mixes this
        class in defines it (`W2SRewardTrainer` from its rewards, `W2SDPOTrainer` from its implicit rewards)."""
        raise NotImplementedError(f"{type(self).__name__} mixes in NeutralEvaluation without defining pair_margins")

    def trl_predictions(self, model, inputs: dict, outputs, ignore_keys: list[str] | None) -> tuple[Any, Any]:
        """The logits and labels TRL's trainer returns for a batch beside its loss (what `predict()` returns and a
        `compute_metrics` receives), from `inputs` as the data loader gave them and `compute_loss`'s `outputs`.

        TRL's `DPOTrainer` returns the policy's logits, from one more forward pass (as TRL makes it), and the batch's
        `input_ids`. TRL's `RewardTrainer` keeps transformers' `Trainer.prediction_step`: the model's outputs but the
        loss (a reward model's rewards, the chosen rows then the rejected ones) and the `label_names` columns (none).
        """
        if isinstance(self, DPOTrainer):
            model_inputs = {key: value for key, value in inputs.items() if key not in _DPO_NON_MODEL_KEYS}
            return model(**model_inputs, use_cache=False).logits.detach(), inputs["input_ids"]
        if ignore_keys is None:
            config = getattr(self.model, "config", None)
            ignore_keys = getattr(config, "keys_to_ignore_at_inference", ["cache"]) if config is not None else []
        if isinstance(outputs, dict):
            logits = tuple(value for key, value in outputs.items() if key not in [*ignore_keys, "loss"])
        else:
            logits = outputs[1:]
        logits = nested_detach(logits)
        labels = nested_detach(tuple(inputs.get(name) for name in self.label_names))
        return logits[0] if len(logits) == 1 else logits, labels[0] if len(labels) == 1 else labels

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys: list[str] | None = None):
        inputs = self._prepare_inputs(inputs)
        given = dict(inputs)  # `compute_loss` takes the label columns out of `inputs`
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
            if self._pair_predictions is not None:
                margins = self.pair_margins(outputs).float()
                labels = given.get(SOFT_LABEL)
                labels = torch.ones_like(margins) if labels is None else labels.float()
                gathered = self.accelerator.gather_for_metrics((margins, labels))
                self._pair_predictions.append(tuple(tensor.cpu() for tensor in gathered))
            if prediction_loss_only:
                return loss.detach(), None, None
            logits, labels = self.trl_predictions(model, given, outputs, ignore_keys)
        return loss.detach(), logits, labels

    def evaluation_loop(
        self,
        dataloader,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ):
        self._pair_predictions = []
        try:
            output = super().evaluation_loop(
                dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
            )
            pairs = self._pair_predictions
        finally:
            self._pair_predictions = None
        if pairs:
            margins, labels = (torch.cat(column).numpy() for column in zip(*pairs, strict=True))
            metrics = compute_pairwise_accuracy(EvalPrediction(predictions=margins, label_ids=labels))
            for key, value in metrics.items():
                output.metrics.setdefault(f"{metric_key_prefix}_{key}", value)
        return output
