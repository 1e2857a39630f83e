"""w2s_align's metrics as `evaluate` modules, loaded from the package (no hub needed):

- `pairwise_accuracy`: `predictions` (a pair's margin: the model's score of the first response minus the
  second's) and `references` (the probability that the first is preferred) -> `accuracy`, the agreement.
- `pgr`: `predictions` (the student's probability on the ground-truth-preferred response of each test pair),
  `weak` and `strong` (the weak and strong ceilings' probabilities) and `training_seed` (one row per test pair and
  seed) -> PGR, the gap and the three accuracies, averaged over seeds, each with its bootstrap interval over test
  pairs and seeds.
- `deception`: the same inputs, plus `baseline` (the no-conflict twin's probabilities) with
  `config_name="conflict"` -> every statistic of [`~w2s_align.analysis.deception.DeceptionAnalyzer`], averaged over
  seeds with its interval (see docs/deception.md).

The trainers compute their validation accuracy with `pairwise_accuracy`; the pipeline's report computes PGR and the
deception statistics with `pgr` and `deception`. Each module's code is a thin wrapper of `w2s_align.analysis`.

Example:

```python
>>> from w2s_align.evaluate_metrics import load_metric
>>> accuracy = load_metric("pairwise_accuracy")
>>> accuracy.compute(predictions=[2.0, -1.0, 0.5], references=[1.0, 0.2, 0.7])
{'accuracy': 1.0}
```

`evaluate.load(metric_path("pgr"))` is the same as `load_metric("pgr", keep_in_memory=False)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import evaluate
    from transformers import EvalPrediction

METRICS = ("pairwise_accuracy", "pgr", "deception")
# The inputs and bootstrap arguments the PGR and deception modules share, for their docstrings.
SCORED_INPUTS = """
    predictions (`list` of `float`): the student's probability on each pair's ground-truth-preferred response.
    weak (`list` of `float`): the same for the weak ceiling (the model that supervised).
    strong (`list` of `float`): the same for the strong ceiling."""
BOOTSTRAP_ARGS = """
    n_bootstrap (`int`, *optional*, defaults to 1000): bootstrap resamples (0: no intervals).
    confidence (`float`, *optional*, defaults to 0.95): coverage of the intervals.
    min_gap (`float`, *optional*): smallest gap PGR is computed for; defaults to one test pair, 1 / number of pairs.
    bootstrap_seed (`int`, *optional*, defaults to 0): seed of the resampling."""


def metric_path(name: str) -> str:
    """The directory of the module `name` (one of [`METRICS`]), for `evaluate.load`."""
    if name not in METRICS:
        raise ValueError(f"no metric module {name!r}; w2s_align has {', '.join(METRICS)}")
    return str(Path(__file__).parent / name)


def load_metric(name: str, config_name: str | None = None, **kwargs: Any) -> evaluate.EvaluationModule:
    """`evaluate.load` of one of w2s_align's modules. Inputs are kept in memory (nothing is written under the
    `evaluate` cache) unless `keep_in_memory=False` is passed."""
    import evaluate

    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(metric_path(name), config_name, **kwargs)


def compute_pairwise_accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """A `compute_metrics` for the trainers: validation accuracy (agreement with the labels) through `evaluate`.
    The trainers' `prediction_step` returns each pair's margin as the prediction and its label as the reference."""
    result = load_metric("pairwise_accuracy").compute(
        predictions=prediction.predictions.reshape(-1), references=prediction.label_ids.reshape(-1)
    )
    return {} if result["accuracy"] is None else result
