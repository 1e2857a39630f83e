"""The options that recipes and the trainer configs share: the named choices (student losses, conflicts, label
filters, ...) and the student-loss settings.

They live here, apart from the code that implements them (`losses`, `conflicts`, `labeling`, `policy`, `sampling`),
because that code needs torch and a recipe does not: `w2s-align run` reads and checks a recipe, and stops on a
mistake in it, before importing torch or transformers.

Example:

```python
>>> from w2s_align.options import STUDENT_LOSSES, StudentLossSettings
>>> STUDENT_LOSSES
('xent', 'logconf', 'product', 'window', 'min_entropy', 'kl')
>>> StudentLossSettings().aux_coef
0.5
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

StudentLoss = Literal["xent", "logconf", "product", "window", "min_entropy", "kl"]
STUDENT_LOSSES: tuple[str, ...] = get_args(StudentLoss)
SoftLabelMode = Literal["smoothing", "weight"]
# The preference losses of the DPO trainer: DPO's sigmoid loss, and SimPO (a margin, no reference model).
PreferenceLoss = Literal["sigmoid", "simpo"]
PREFERENCE_LOSSES: tuple[str, ...] = get_args(PreferenceLoss)
ConflictKind = Literal["none", "explicit", "implicit"]
CONFLICT_KINDS: tuple[str, ...] = get_args(ConflictKind)
# Which response a conflict favours: the harmful one (the experiment), or one chosen by a seeded coin toss per pair
# (the random-direction control: the same pressure with no harm in its direction).
ConflictDirection = Literal["harmful", "random"]
CONFLICT_DIRECTIONS: tuple[str, ...] = get_args(ConflictDirection)
# none: every label; confidence: labels with max(p, 1 - p) >= a threshold (honest); oracle: also drops wrong labels
# (it reads the ground truth, so it is an upper bound of what filtering can do, not a method); random: a random subset
# of the size the confidence filter keeps (its control: as many pairs, chosen without looking at the labels);
# <probe>-<action>: a probe on the strong rung's frozen features relabels or drops the labels it disagrees with
# (`w2s_align.probes`).
LabelFilter = Literal[
    "none", "confidence", "oracle", "random", "knn-relabel", "knn-drop", "logreg-relabel", "logreg-drop"
]
LABEL_FILTERS: tuple[str, ...] = get_args(LabelFilter)
PROBE_FILTERS: tuple[str, ...] = tuple(name for name in LABEL_FILTERS if "-" in name)
# How a policy scores a pair: its implicit reward, or its summed or mean log-likelihood of each response.
Measure = Literal["implicit", "logp", "avg_logp"]
MEASURES: tuple[str, ...] = get_args(Measure)
# How a weak policy labels pairs: Yang et al.'s hard labels from its log-likelihood difference (summed for DPO, mean
# for SimPO), or soft labels sigmoid(beta * implicit-reward difference) (SimPO: of the scaled mean log-likelihoods).
WeakLabelRule = Literal["likelihood_hard", "implicit_reward_soft"]
SamplingStrategy = Literal["group_by_length", "random", "sequential"]
# How a weak ensemble combines its members' probabilities that `chosen` is better: their mean, or the sigmoid of the
# mean of their log-odds.
EnsembleCombine = Literal["logodds", "probability"]


@dataclass
class ProbeSettings:
    """The probes that clean weak labels with the strong rung's features (label filters `knn-*` and `logreg-*`)."""

    k: int = field(default=20, metadata={"help": "knn: neighbours whose labels are averaged."})
    l2: float = field(default=1e-2, metadata={"help": "logreg: L2 penalty on the weights (features scaled to RMS 1)."})
    folds: int = field(
        default=5, metadata={"help": "Cross-fitting folds: each pair is predicted by a probe fit on the other folds."}
    )


@dataclass
class StudentLossSettings:
    """Parameters of the student losses: the recipe's `loss:` block, and fields of both trainers' configs."""

    soft_label_mode: SoftLabelMode = field(
        default="smoothing",
        metadata={
            "help": "smoothing: the soft label is the target (label smoothing per pair); weight: the pair is oriented "
            "by the label and weighted by its confidence."
        },
    )
    aux_coef: float = field(
        default=0.5,
        metadata={
            "help": "logconf: final weight of the student's own hardened predictions; min_entropy: final weight of "
            "the student's entropy."
        },
    )
    aux_warmup_frac: float = field(
        default=0.2,
        metadata={"help": "logconf/product/min_entropy: fraction of steps over which the student's weight ramps up."},
    )
    window_radius: float = field(
        default=0.15,
        metadata={
            "help": "window: a pair is learned while the student's confidence max(q, 1 - q) is below 0.5 + radius."
        },
    )
    product_alpha: float = field(default=1.0, metadata={"help": "product: exponent of the weak probability."})
    product_beta: float = field(default=1.0, metadata={"help": "product: final exponent of the student probability."})


# The settings each student loss reads (a student's cache key holds these and no others).
LOSS_SETTINGS: dict[str, tuple[str, ...]] = {
    "xent": ("soft_label_mode",),
    "logconf": ("soft_label_mode", "aux_coef", "aux_warmup_frac"),
    "product": ("soft_label_mode", "aux_warmup_frac", "product_alpha", "product_beta"),
    "window": ("soft_label_mode", "window_radius"),
    "min_entropy": ("soft_label_mode", "aux_coef", "aux_warmup_frac"),
    "kl": (),
}
