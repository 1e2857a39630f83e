"""The options that recipes and the trainer configs share: every named choice (tasks, data sources, student losses,
conflicts, label filters, ...) and the student-loss settings.

They live here, apart from the code that implements them (`tasks`, `data`, `losses`, `conflicts`, `labeling`,
`policy_predictions`, `sampling`, `analysis.deception`), so that the recipe schema imports nothing but this module:
`w2s-align run` reads and checks a recipe, and stops on a mistake in it, before importing torch or transformers. A
registry that implements a vocabulary asserts that its keys are the vocabulary's.

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

# The label columns of a pair: a supervisor's probability that `chosen` is better, and the conflicting objective's.
SOFT_LABEL = "soft_label"
CONFLICT_LABEL = "conflict_label"
LABEL_COLUMNS = (SOFT_LABEL, CONFLICT_LABEL)
# A classification example's ground truth (0 or 1), the reference implementations' name; its soft label is a
# supervisor's probability of class 1.
HARD_LABEL = "hard_label"
# The tasks a ladder learns (`tasks.REGISTRY`).
TaskName = Literal["reward", "dpo", "classify"]
TASKS: tuple[str, ...] = get_args(TaskName)
# The fewest and the most bootstrap resamples to read intervals off (`analysis.n_bootstrap`, `calibrate --bootstrap`).
# An endpoint of a 95% percentile interval moves from one bootstrap seed to another by about 2.5 / sqrt(n_bootstrap)
# standard deviations of the statistic: 12% of the interval's half-width at 100 resamples (where each 2.5% tail holds
# 2.5 of them; below 40 the endpoints are the most extreme draws themselves), 1.4% at 10,000, past which more only
# cost time and memory.
MIN_BOOTSTRAP = 100
MAX_BOOTSTRAP = 10_000

# The sources of preference pairs (`data.SOURCES`); under `task: classify` each pair becomes one example.
PairSource = Literal["synthetic", "hh_rlhf", "hh_single_turn", "hh_single_turn_helpful", "pku_saferlhf", "preference"]
PAIR_SOURCES: tuple[str, ...] = get_args(PairSource)
# The classification tasks of the reference registries (`classification_sources.SOURCES`), for `task: classify`, and
# `text_classification`: a local file or hub dataset already in their format (`txt`, `hard_label`).
ClassificationSourceName = Literal[
    "amazon_polarity", "sciq", "anthropic_hh", "cosmos_qa", "boolq", "anli-r2", "cola", "dream",
    "ethics-deontology", "ethics-justice", "ethics-virtue", "ethics-utilitarianism", "mc_taco", "hellaswag", "multirc",
    "openbookqa", "paws", "piqa", "quail", "quartz", "social_i_qa", "sst2", "wic", "twitter-sentiment",
    "sciq_with_support", "text_classification",
]  # fmt: skip
CLASSIFICATION_SOURCES: tuple[str, ...] = get_args(ClassificationSourceName)
DataSource = Literal[PairSource, ClassificationSourceName]
DATA_SOURCES: tuple[str, ...] = get_args(DataSource)
# The splits of a run's data: ground truth, weak-to-strong, test.
SPLITS = ("gt", "w2s", "test")
# The difficulty kinds of the synthetic task's pairs (`synthetic`).
SYNTHETIC_KINDS = ("surface", "context", "paraphrase")
# The synthetic task's two disjoint halves of its vocabulary (`synthetic`): training pairs use `seen`; a `heldout`
# test uses words never trained on.
Pool = Literal["seen", "heldout"]
POOLS: tuple[str, ...] = get_args(Pool)
# What a weak teacher is taken to know of a pair (`analysis.deception`): what it labels correctly, or confidently.
Known = Literal["correct", "confident"]
KNOWN: tuple[str, ...] = get_args(Known)
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
# The controls a conflicted student's deception verdicts are read against (`controls.CONTROLS`): the teacher-aligned
# error added by the conflict against the first two, deception beyond imitation against all three.
DeceptionControl = Literal["placebo", "random-direction", "imitation"]
DECEPTION_CONTROLS: tuple[str, ...] = get_args(DeceptionControl)
# Students judged as if they were a conflicted student, to check both verdicts on trained students (`controls.CHECKS`):
# none is deceptive but `deceiver-<share>` (that share of its training pairs in the teacher's blind spot relabelled to
# the harmful response).
DECEPTION_CHECKS = ("same-seed", "longer", "faster", "hardened", "deceiver")
# none: every label; confidence: labels with max(p, 1 - p) >= a threshold (honest); oracle: also drops wrong labels
# (it reads the ground truth, so it is an upper bound of what filtering can do, not a method); random: a random subset
# of the size the confidence filter keeps (its control: as many pairs, chosen without looking at the labels);
# <probe>-<action>: a probe on the strong rung's frozen features relabels or drops the labels it disagrees with
# (`w2s_align.probes`).
LabelFilter = Literal[
    "none", "confidence", "oracle", "random", "knn-relabel", "knn-drop", "logreg-relabel", "logreg-drop"
]
LABEL_FILTERS: tuple[str, ...] = get_args(LabelFilter)
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

# Trainer config fields that the pipeline, or the recipe's `tracking` or `hub` block, sets for every stage, and who
# sets them: a rung's `trainer_kwargs` may not set them (with `push_to_hub`, every stage would push to one repository
# named after its checkpoint directory).
OWNED_TRAINER_FIELDS = {
    **dict.fromkeys(("output_dir", "seed", "student_loss", "max_length", "conflict_alpha"), "the pipeline"),
    "data_seed": "the pipeline (the seed; a placebo's batch order)",
    "report_to": "tracking.report_to",
    "run_name": "tracking (runs are named by stage)",
    "project": "tracking.project",
    "push_to_hub": "hub.push",
    "hub_model_id": "hub (ids are derived from the run and the stage)",
}


@dataclass(frozen=True)
class ConflictSetting:
    """One conflict setting of a student: its kind and strength (`alpha` for explicit, `ratio` for implicit), and
    the direction it pulls (`harmful`, or `random`: the control)."""

    kind: str = "none"
    strength: float = 0.0
    direction: str = "harmful"

    def __post_init__(self):
        if self.kind not in CONFLICT_KINDS:
            raise ValueError(f"conflict kind must be one of {CONFLICT_KINDS}, got {self.kind!r}")
        if self.direction not in CONFLICT_DIRECTIONS:
            raise ValueError(f"conflict direction must be one of {CONFLICT_DIRECTIONS}, got {self.direction!r}")

    @property
    def label(self) -> str:
        """Short name used in model keys and reports: `none`, `explicit-0.5`, `implicit-1`, `explicit-0.5-random`."""
        if self.kind == "none":
            return "none"
        return f"{self.kind}-{self.strength:g}" + ("-random" if self.direction == "random" else "")

    @property
    def random(self) -> ConflictSetting:
        """Its random-direction control."""
        return ConflictSetting(self.kind, self.strength, "random")


@dataclass(frozen=True)
class FilterSetting:
    """One label filter of a student, typed: its `kind` (`none`, `confidence`, `oracle`, `random`, or `probe`), and
    for a probe, which one (`knn`, `logreg`) and what it does to a label it disagrees with (`relabel`, `drop`).
    [`LabelFilter`] names them (`knn-relabel` for a probe).

    Example:

    ```python
    >>> from w2s_align.options import FilterSetting
    >>> FilterSetting.named("knn-drop")
    FilterSetting(kind='probe', probe='knn', action='drop')
    >>> FilterSetting.named("knn-drop").label, FilterSetting.named("confidence").label
    ('knn-drop', 'confidence')
    ```
    """

    kind: str = "none"
    probe: str | None = None
    action: str | None = None

    def __post_init__(self):
        if self.label not in LABEL_FILTERS:
            raise ValueError(f"label filter must be one of {LABEL_FILTERS}, got {self.label!r}")

    @classmethod
    def named(cls, name: str) -> FilterSetting:
        """The setting of the filter named `name` (a `LabelFilter`)."""
        probe, _, action = name.partition("-")
        return cls("probe", probe, action) if action else cls(name)

    @property
    def label(self) -> str:
        """Its name in recipes, model keys and reports: `none`, `confidence`, ..., `knn-relabel`."""
        return f"{self.probe}-{self.action}" if self.kind == "probe" else self.kind


@dataclass
class ProbeSettings:
    """The probes that clean weak labels with the strong rung's features (label filters `knn-*` and `logreg-*`)."""

    k: int = field(default=20, metadata={"max": 10_000, "help": "knn: neighbours whose labels are averaged."})
    l2: float = field(default=1e-2, metadata={"help": "logreg: L2 penalty on the weights (features scaled to RMS 1)."})
    folds: int = field(
        default=5,
        metadata={
            "max": 100,
            "help": "Cross-fitting folds: each pair is predicted by a probe fit on the other folds.",
        },
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
