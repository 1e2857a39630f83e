"""Performance Gap Recovered (PGR) with a bootstrap interval over test pairs and training seeds."""

import datasets
import evaluate

from w2s_align.analysis.deception import pgr_statistics
from w2s_align.cards import BURNS_2023
from w2s_align.evaluate_metrics import BOOTSTRAP_ARGS, SCORED_INPUTS

_DESCRIPTION = """
Performance Gap Recovered: PGR = (acc_student - acc_weak) / (acc_strong - acc_weak), the fraction of the gap between
the weak supervisor (its ceiling, trained on ground truth) and the strong ceiling that the weakly supervised strong
student recovers (Burns et al., 2023). Each input row is one test pair of one training seed; each model's input is the
probability it puts on the pair's ground-truth-preferred response (`prob_chosen` of a w2s_align predictions file), so
a model is right where it is above 0.5. Accuracies are averaged over seeds, and PGR is computed from the means; the
interval resamples the test pairs (weak, ceilings and student together) and the seeds. PGR is None where the gap is
below `min_gap`; `gap_within_noise` is True where the gap's interval reaches 0 (a PGR there is not a measurement).
"""

_KWARGS_DESCRIPTION = f"""
Args:{SCORED_INPUTS}
    training_seed (`list` of `int`): the training seed of each row; every seed covers the same test pairs in order.\
{BOOTSTRAP_ARGS}
Returns:
    pgr, gap, accuracy.weak, accuracy.strong, accuracy.student: each a dict with `value` (the mean over seeds),
    `ci_low`, `ci_high`, `per_seed` and `defined_seeds`; gap_within_noise (`bool`).
Examples:
    >>> from w2s_align.evaluate_metrics import load_metric
    >>> result = load_metric("pgr").compute(
    ...     predictions=[0.9, 0.8, 0.3, 0.6], weak=[0.9, 0.9, 0.3, 0.4], strong=[0.9, 0.8, 0.7, 0.6],
    ...     training_seed=[0, 0, 0, 0], n_bootstrap=0)
    >>> result["pgr"]["value"]
    0.5
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PGR(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=BURNS_2023["citation"],
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("float64"),
                    "weak": datasets.Value("float64"),
                    "strong": datasets.Value("float64"),
                    "training_seed": datasets.Value("int64"),
                }
            ),
        )

    def _compute(
        self,
        predictions,
        weak,
        strong,
        training_seed,
        n_bootstrap=1000,
        confidence=0.95,
        min_gap=None,
        bootstrap_seed=0,
    ):
        return pgr_statistics(
            predictions, weak, strong, training_seed, n_bootstrap, confidence, min_gap, bootstrap_seed
        )
