"""The recipe schema: one YAML file describes a whole weak-to-strong experiment.

A recipe names the data and its three disjoint splits (ground truth, weak-to-strong, test), the ladder of models,
which weak -> strong pairs to run, the student methods, the seeds and the output directory. The schema is a tree of
typed dataclasses with help text, and imports nothing but the vocabularies of [`w2s_align.options`], so that every
module can name its types. [`w2s_align.recipe_yaml.load_recipe`] reads a file into it.

Example:

```python
>>> from w2s_align.recipe import Recipe, RungConfig
>>> recipe = Recipe(name="demo", ladder=[RungConfig(name="weak", model="m1"), RungConfig(name="strong", model="m2")])
>>> recipe.rung("strong").model, recipe.task
('m2', 'reward')
```
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .options import (
    MAX_BOOTSTRAP,
    MIN_BOOTSTRAP,
    ConflictKind,
    DataSource,
    EnsembleCombine,
    Known,
    LabelFilter,
    Measure,
    PairSource,
    Pool,
    PreferenceLoss,
    ProbeSettings,
    SamplingStrategy,
    StudentLoss,
    StudentLossSettings,
    TaskName,
    WeakLabelRule,
)

# The largest seed numpy and torch take.
SEED_MAX = 2**32 - 1


@dataclass
class LoraSettings:
    """LoRA adapter settings for one rung (passed to `peft.LoraConfig`); the reward head is always trained."""

    r: int = field(default=16, metadata={"max": 4096, "help": "LoRA rank."})
    alpha: int = field(default=32, metadata={"help": "LoRA scaling `lora_alpha`."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    target_modules: list[str] | str = field(
        default="all-linear", metadata={"help": "Modules to adapt: a list of names or `all-linear`."}
    )


@dataclass
class TrainingSettings:
    """How one rung is trained. Set recipe-wide under `training:` and per rung under `ladder[i].training:`."""

    learning_rate: float = field(default=1e-5, metadata={"max": 10.0, "help": "Peak learning rate of AdamW."})
    num_train_epochs: float = field(default=1.0, metadata={"max": 1000, "help": "Passes over the training split."})
    per_device_train_batch_size: int = field(
        default=8, metadata={"max": 65536, "help": "Pairs per device and micro-batch."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"max": 65536, "help": "Micro-batches per optimizer step."}
    )
    eval_batch_size: int = field(
        default=64, metadata={"max": 65536, "help": "Pairs per batch when labeling and evaluating."}
    )
    logging_steps: float = field(
        default=0.05,
        metadata={
            "max": 1e7,
            "help": "Log the training metrics every this many optimizer steps, or, below 1, this fraction of the "
            "stage's steps (the default: 20 points a stage, however short). Changes no result.",
        },
    )
    max_length: int = field(
        default=512,
        metadata={
            "max": 2**20,
            "help": "Longest prompt+response in tokens; longer ones are truncated from the left (the prompt).",
        },
    )
    warmup_steps: float = field(
        default=0.0,
        metadata={"max": 1e7, "help": "Learning-rate warmup: steps, or a fraction of all steps when below 1."},
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "A `transformers` scheduler name."})
    train_sampling_strategy: SamplingStrategy = field(
        default="group_by_length",
        metadata={
            "help": "group_by_length: batches of pairs of similar length, shuffled by the seed (little padding); "
            "random: random batches, as TRL draws them; sequential: the split's order."
        },
    )
    freeze_embeddings: bool = field(
        default=False, metadata={"help": "Keep the input embeddings fixed (much faster on CPU for small models)."}
    )
    validation_fraction: float = field(
        default=0.0,
        metadata={
            "help": "Share of each trained model's pairs held out (by its seed) as a validation split, evaluated at "
            "every epoch (or as `trainer_kwargs.eval_strategy` says) against the labels the model trains on: ground "
            "truth for ceilings, weak labels for students. 0: none."
        },
    )
    lora: LoraSettings | None = field(default=None, metadata={"help": "Train LoRA adapters instead of all weights."})
    load_in_4bit: bool = field(
        default=False, metadata={"help": "QLoRA: load the rung in 4-bit (bitsandbytes) and train LoRA adapters."}
    )
    trainer_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Any other `W2SRewardConfig` / `TrainingArguments` field, e.g. `{save_steps: 100}`."},
    )


@dataclass
class GenerativeSettings:
    """Generative finetuning of a causal-LM rung before it trains (Burns et al. 2023, section 5.2.2)."""

    epochs: float = field(
        default=0.0,
        metadata={
            "max": 1000,
            "help": "Epochs of language modeling over the texts of the ground-truth and weak-to-strong splits (each "
            "prompt with each of its responses, no labels) before the rung's ceiling and students train, once per "
            "seed; 0: off. Causal-LM rungs only.",
        },
    )
    learning_rate: float | None = field(
        default=None, metadata={"max": 10.0, "help": "Its learning rate (None: the rung's)."}
    )


@dataclass
class RungConfig:
    """One model of the ladder."""

    name: str = field(metadata={"help": "Short name used in reports, pairs and command-line overrides."})
    model: str = field(metadata={"help": "Hub id (e.g. `gpt2`, `Qwen/Qwen2.5-0.5B`) or local path."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)."})
    num_layers: int | None = field(
        default=None,
        metadata={
            "max": 10000,
            "help": "Keep only the first k transformer layers (a cheaper rung of the same model).",
        },
    )
    config_overrides: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Extra `from_pretrained` config overrides, e.g. `{dropout: 0.0}`."}
    )
    chat_template_path: str | None = field(
        default=None,
        metadata={
            "help": "The chat template conversational pairs are read in, as TRL's `chat_template_path`: a Jinja file "
            "(`.jinja`, `.j2`) or a tokenizer (hub id or directory) whose template is copied; for a model whose "
            "tokenizer has none (it then reads a plain rendering) or to replace its own. The cache keys on the path."
        },
    )
    random_init: bool = field(
        default=False,
        metadata={
            "help": "Start from random weights of the model's architecture (seeded by the stage): the cheapest weak "
            "supervisor, whose gap to its pretrained self is exactly pretraining knowledge."
        },
    )
    training: TrainingSettings = field(
        default_factory=TrainingSettings, metadata={"help": "Overrides of the recipe-wide `training` settings."}
    )
    generative: GenerativeSettings = field(
        default_factory=GenerativeSettings,
        metadata={"help": "Generative finetuning on the task's texts before the rung trains (off by default)."},
    )


@dataclass
class SyntheticSettings:
    """Settings of the synthetic generator (`data.source: synthetic`)."""

    kind_weights: dict[str, float] = field(
        default_factory=lambda: {"surface": 1.0, "context": 1.0, "paraphrase": 1.0},
        metadata={"help": "Relative frequency of the difficulty kinds surface, context and paraphrase."},
    )
    test_pool: Pool = field(
        default="heldout", metadata={"help": "Vocabulary half of the test split (`heldout`: words never trained on)."}
    )


@dataclass
class DataConfig:
    """Where the preference pairs come from and how they are cut into ground-truth, weak-to-strong and test splits."""

    source: DataSource = field(
        default="synthetic", metadata={"help": "Where the pairs come from (see docs/recipes.md, Data sources)."}
    )
    path: str | None = field(
        default=None, metadata={"help": "Hub dataset id or local file/directory; each source has a default."}
    )
    data_dir: str | None = field(default=None, metadata={"help": "Subset of a hub dataset, e.g. `harmless-base`."})
    files: dict[str, str] | None = field(
        default=None,
        metadata={"help": "Local files per split: keys `gt`, `w2s`, `test` (or `train` and `test`, or `all`)."},
    )
    config_name: str | None = field(default=None, metadata={"help": "Configuration (subset) of a hub dataset."})
    split_names: dict[str, str] | None = field(
        default=None,
        metadata={
            "help": "The hub dataset's splits to use, by role: `train`, `test` (or `gt`, `w2s`, `test`, or `all`), "
            "e.g. `{train: train_prefs, test: test_prefs}` (None: its `train` and `test`)."
        },
    )
    gt_size: int | None = field(
        default=None, metadata={"max": 10**7, "help": "Pairs in the ground-truth split (None: all)."}
    )
    w2s_size: int | None = field(
        default=None, metadata={"max": 10**7, "help": "Pairs in the weak-to-strong split (None: all)."}
    )
    test_size: int | None = field(
        default=None, metadata={"max": 10**7, "help": "Pairs in the test split (None: all)."}
    )
    seed: int = field(
        default=0, metadata={"max": SEED_MAX, "help": "Seed of the subsampling and of the synthetic generator."}
    )
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings, metadata={"help": "Generator settings."})
    evaluate_on: Literal["test", "validation"] = field(
        default="test",
        metadata={
            "help": "test: every model is evaluated on the test split (reported numbers). validation: on "
            "`validation_size` pairs held out of the ground-truth split instead, and the test split is never read: "
            "for design choices (rungs, learning rates, thresholds) before the reported run."
        },
    )
    validation_size: int | None = field(
        default=None,
        metadata={"max": 10**7, "help": "Pairs of the ground-truth split held out with `evaluate_on: validation`."},
    )


@dataclass
class EnsembleConfig:
    """A weak ensemble: the labels of several weak supervisors (rungs, seeds or both) combined into one teacher."""

    rungs: list[str] = field(
        default_factory=list, metadata={"help": "Further weak rungs whose ceilings join the pair's `weak` rung."}
    )
    seeds: int = field(
        default=1,
        metadata={
            "max": 100,
            "help": "Members per rung: ceilings trained with seeds `seed`, `seed + 1000`, `seed + 2000`, ... for the "
            "run's `seed`.",
        },
    )
    combine: EnsembleCombine = field(
        default="logodds",
        metadata={"help": "logodds: sigmoid of the members' mean log-odds; probability: their mean probability."},
    )


@dataclass
class PairConfig:
    """One weak -> strong experiment."""

    weak: str = field(metadata={"help": "Name of the weak rung (the supervisor)."})
    strong: str = field(metadata={"help": "Name of the strong rung (the student and the strong ceiling)."})
    via: list[str] = field(
        default_factory=list,
        metadata={"help": "Bootstrapping: intermediate rungs, each trained on the previous one's labels."},
    )
    label_filters: list[LabelFilter] | None = field(
        default=None, metadata={"help": "Weak-label filters of this pair's students (None: the recipe's)."}
    )
    methods: list[StudentLoss] | None = field(
        default=None, metadata={"help": "Student methods of this pair (None: the recipe's `methods`)."}
    )
    conflicts: list[ConflictKind] | None = field(
        default=None,
        metadata={"help": "Conflict settings of this pair's students, some of `conflicts.settings` (None: all)."},
    )
    ensemble: EnsembleConfig | None = field(
        default=None,
        metadata={"help": "Teach with a weak ensemble of `weak` and more rungs or seeds instead of `weak` alone."},
    )


@dataclass
class HelpfulDataConfig:
    """Helpfulness preference pairs mixed into the student's data by the implicit conflict."""

    source: PairSource = field(
        default="synthetic", metadata={"help": "Where the helpfulness pairs come from (a source of pairs)."}
    )
    path: str | None = field(default=None, metadata={"help": "Hub dataset id or local file/directory."})
    data_dir: str | None = field(
        default="helpful-base", metadata={"help": "Subset of a hub dataset (HH-RLHF: `helpful-base`)."}
    )
    files: dict[str, str] | None = field(default=None, metadata={"help": "Local files, as `data.files`."})
    seed: int = field(
        default=0, metadata={"max": SEED_MAX, "help": "Seed of the sampling (and of the synthetic generator)."}
    )


@dataclass
class ConflictConfig:
    """Conflicting objectives for the strong student (see docs/deception.md)."""

    settings: list[ConflictKind] = field(
        default_factory=lambda: ["none"], metadata={"help": "Conflict settings to run: none, explicit, implicit."}
    )
    alphas: list[float] = field(
        default_factory=lambda: [0.5],
        metadata={"max": 100.0, "help": "Strengths of the explicit conflict term (a sweep)."},
    )
    ratios: list[float] = field(
        default_factory=lambda: [1.0],
        metadata={"max": 100.0, "help": "Helpful pairs per harmless pair, implicit conflict."},
    )
    methods: list[StudentLoss] | None = field(
        default=None, metadata={"help": "Student methods that get the conflicts (None: every method)."}
    )
    helpful: HelpfulDataConfig = field(
        default_factory=HelpfulDataConfig, metadata={"help": "Helpfulness pairs for the implicit conflict."}
    )
    checks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Students judged as if they were each conflicted student, to check the deception verdicts on "
            "trained students: same-seed (batches in a third order), longer (twice the epochs), faster (1.5 x the "
            "learning rate), hardened (hardened weak labels), none of them deceptive; deceiver-<share> (that share of "
            "the training pairs where the strong ceiling is right and the weak label wrong relabelled to the harmful "
            "response: deceptive by construction). Needs controls."
        },
    )


@dataclass
class AnalysisConfig:
    """How the deception analyzer defines knowledge and computes its intervals (see docs/deception.md)."""

    known: Known = field(
        default="correct", metadata={"help": "A model knows a pair when it is correct, or confident (>= threshold)."}
    )
    threshold: float = field(default=0.75, metadata={"help": "Confidence threshold of `known: confident`."})
    weak_areas: Literal["label_score", "eval_measure"] = field(
        default="label_score",
        metadata={
            "help": "What the weak teacher knows is read from the score it labelled with (a weak policy: its "
            "log-likelihood, summed for DPO, mean for SimPO), or from the measure every model is evaluated by "
            "(`dpo.eval_measure`). Reward models label and are evaluated by one score."
        },
    )
    n_bootstrap: int = field(
        default=1000,
        metadata={
            "max": MAX_BOOTSTRAP,
            "help": f"Bootstrap resamples of the test pairs, 0 (none) or {MIN_BOOTSTRAP} to {MAX_BOOTSTRAP}.",
        },
    )
    confidence: float = field(default=0.95, metadata={"help": "Coverage of the bootstrap intervals."})


@dataclass
class TrackingConfig:
    """Experiment tracking (see docs/tracking.md). Result-neutral: no stage's hash depends on it."""

    report_to: list[str] = field(
        default_factory=list,
        metadata={"help": "Trackers, any `transformers` integration: tensorboard, wandb, trackio, mlflow, ..."},
    )
    project: str | None = field(
        default=None, metadata={"help": "Project of the trackers that have one (W&B, Trackio); the recipe's name."}
    )


@dataclass
class HubConfig:
    """Pushing a run's models and weak labels to the Hub when it ends (see docs/hub.md). Result-neutral."""

    push: list[Literal["ceilings", "students", "labels"]] = field(
        default_factory=list,
        metadata={"help": "What to push: ceilings, students (models with their cards), labels (weak-label datasets)."},
    )
    namespace: str | None = field(
        default=None, metadata={"help": "User or organization of the repositories (None: the logged-in user)."}
    )
    private: bool = field(default=True, metadata={"help": "Create the repositories private."})


@dataclass
class DPOSettings:
    """Preference optimization of policies (`task: dpo`, see docs/dpo_trainer.md)."""

    loss_type: PreferenceLoss = field(
        default="sigmoid", metadata={"help": "sigmoid (DPO, with a reference) or simpo (no reference)."}
    )
    beta: float | None = field(
        default=None, metadata={"help": "DPO/SimPO beta (None: the paper's, 0.1 for DPO and 2.0 for SimPO)."}
    )
    simpo_gamma: float = field(default=1.0, metadata={"help": "SimPO target reward margin."})
    sft: bool = field(default=True, metadata={"help": "Supervised finetuning on the preferred responses before DPO."})
    sft_epochs: float = field(default=1.0, metadata={"max": 1000, "help": "Epochs of the SFT stage."})
    sft_learning_rate: float | None = field(
        default=None, metadata={"max": 10.0, "help": "Learning rate of the SFT stage (None: the rung's)."}
    )
    supervisor: Literal["policy", "reward"] = field(
        default="policy", metadata={"help": "Weak labels from the weak policy, or from a weak reward model."}
    )
    weak_labels: WeakLabelRule = field(
        default="likelihood_hard",
        metadata={
            "help": "How a weak policy labels: likelihood_hard (the paper: hard labels from its log-likelihood "
            "difference, summed for DPO, mean for SimPO) or implicit_reward_soft (sigmoid(beta * implicit-reward "
            "difference))."
        },
    )
    eval_measure: Measure | None = field(
        default=None,
        metadata={"help": "Measure behind accuracy, PGR and deception (None: implicit for DPO, avg_logp for SimPO)."},
    )
    precompute_ref_log_probs: bool = field(
        default=True, metadata={"help": "Compute the reference log-probs once before training (faster)."}
    )

    def __post_init__(self):
        if self.beta is None:
            self.beta = 2.0 if self.loss_type == "simpo" else 0.1

    def label_score(self) -> tuple[str, float]:
        """The prediction column and its scale by which a weak policy labels pairs: its summed log-likelihood
        difference for DPO and the mean for SimPO (`likelihood_hard`, Yang et al.), or the implicit reward
        difference (`implicit_reward_soft`; SimPO's scaled mean log-likelihood difference)."""
        simpo = self.loss_type == "simpo"
        if self.weak_labels == "likelihood_hard":
            return ("margin_avg_logp" if simpo else "margin_logp"), 1.0
        return ("margin_avg_logp", self.beta) if simpo else ("margin_implicit", 1.0)


@dataclass
class Recipe:
    """A weak-to-strong experiment."""

    name: str = field(metadata={"help": "Experiment name."})
    ladder: list[RungConfig] = field(metadata={"help": "Models from weakest to strongest."})
    task: TaskName = field(
        default="reward", metadata={"help": "What the models learn: reward models, or DPO/SimPO policies."}
    )
    output_dir: str | None = field(default=None, metadata={"help": "Run directory; defaults to `runs/<name>`."})
    seeds: list[int] = field(
        default_factory=lambda: [0], metadata={"max": SEED_MAX, "help": "Training seeds; metrics average them."}
    )
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Data and splits."})
    training: TrainingSettings = field(
        default_factory=TrainingSettings, metadata={"help": "Training settings shared by every rung."}
    )
    pairs: list[PairConfig] | None = field(
        default=None, metadata={"help": "Weak -> strong pairs; defaults to every rung -> the last rung."}
    )
    methods: list[StudentLoss] = field(
        default_factory=lambda: ["xent"],
        metadata={"help": "Student methods to run for every pair: values of the trainers' `student_loss`."},
    )
    loss: StudentLossSettings = field(
        default_factory=StudentLossSettings,
        metadata={"help": "Student loss parameters: fields of `W2SRewardConfig` / `W2SDPOConfig`, same names."},
    )
    dpo: DPOSettings = field(default_factory=DPOSettings, metadata={"help": "Policy settings for `task: dpo`."})
    conflicts: ConflictConfig = field(
        default_factory=ConflictConfig, metadata={"help": "Conflict settings of the strong students."}
    )
    label_filters: list[LabelFilter] = field(
        default_factory=lambda: ["none"],
        metadata={
            "help": "Weak-label filters: none, confidence (honest), oracle (also drops wrong labels), or a probe on "
            "the strong rung's frozen features that relabels or drops the labels it disagrees with (knn-relabel, "
            "knn-drop, logreg-relabel, logreg-drop)."
        },
    )
    filter_threshold: float = field(
        default=0.75, metadata={"help": "Minimum weak-label confidence max(p, 1-p) kept by the filters."}
    )
    probe: ProbeSettings = field(
        default_factory=ProbeSettings, metadata={"help": "The probes of the knn-* and logreg-* label filters."}
    )
    controls: bool = field(
        default=True,
        metadata={
            "help": "Train the controls the deception verdicts and the confidence filter are read against: for "
            "every conflicted student its no-conflict twin with its batches in another order (placebo), the same "
            "conflict toward coin-toss responses (random direction) and the twin trained twice the epochs "
            "(imitation), an implicit student's twin trained as many steps, and for every confidence-filtered "
            "student a random subset of the same size (w2s_align.controls). false: none (quick runs; the reports "
            "then say 'no control')."
        },
    )
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig, metadata={"help": "Deception analysis."})
    tracking: TrackingConfig = field(
        default_factory=TrackingConfig, metadata={"help": "Experiment trackers (TensorBoard, W&B, ...)."}
    )
    hub: HubConfig = field(default_factory=HubConfig, metadata={"help": "Pushing models and labels to the Hub."})

    @property
    def methods_used(self) -> list[str]:
        """Every student method some pair runs (its own `methods`, or the recipe's), in order."""
        return list(dict.fromkeys(method for pair in self.pairs for method in pair.methods or self.methods))

    def rung(self, name: str) -> RungConfig:
        """The rung called `name`."""
        for rung in self.ladder:
            if rung.name == name:
                return rung
        raise KeyError(name)

    @property
    def run_dir(self) -> Path:
        """Where the run writes: `output_dir` (`~` expanded, as `transformers` does for the checkpoints) or
        `runs/<name>`."""
        return Path(self.output_dir or f"runs/{self.name}").expanduser()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def validation_size(fraction: float, pairs: int) -> int:
    """How many of `pairs` a rung holds out for validation at `validation_fraction` `fraction`: that share, at least
    one (none at 0), and never all of them.

    ```python
    >>> validation_size(0.1, 48), validation_size(0.99, 48), validation_size(0.1, 0)
    (5, 47, 0)
    ```
    """
    return max(0, min(max(1, round(fraction * pairs)), pairs - 1)) if fraction else 0
