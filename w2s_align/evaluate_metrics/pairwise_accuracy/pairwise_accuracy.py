"""Pairwise accuracy: how often a model prefers the response a pair's label prefers, whichever order the pair is in."""

import datasets
import evaluate

from w2s_align.analysis.metrics import pairwise_accuracy
from w2s_align.cards import BURNS_2023

_DESCRIPTION = """
Pairwise accuracy of a reward model or preference-optimized policy: the fraction of pairs where the model's margin
(its score of the first response minus its score of the second) has the sign of the label (the probability that the
first response is preferred, hard or soft). A pair stored in the other order (margin -> -margin, label -> 1 - label)
counts the same; a tie counts as wrong; a pair whose label is exactly 0.5 prefers neither response and is left out.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): each pair's margin.
    references (`list` of `float`): each pair's label, the probability that the first response is preferred.
Returns:
    accuracy (`float` or `None`): the agreement, None when every label is 0.5.
Examples:
    >>> from w2s_align.evaluate_metrics import load_metric
    >>> load_metric("pairwise_accuracy").compute(predictions=[2.0, -1.0], references=[1.0, 1.0])
    {'accuracy': 0.5}
"""

_CITATION = BURNS_2023["citation"]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PairwiseAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
        )

    def _compute(self, predictions, references):
        return {"accuracy": pairwise_accuracy(predictions, references)}
