"""The plan of a run: every stage a recipe implies, as typed specs, before anything trains.

[`build_plan`] expands a recipe (seeds x pairs x methods x bootstrapping chains x conflicts x label filters) into:

- [`DataSpec`]: the three splits; [`HelpfulSpec`]: the helpfulness pairs of the implicit conflict;
- [`GenerativeSpec`]: a rung finetuned as a language model first; [`SFTSpec`]: the supervised finetuning a policy
  starts from; [`FeatureSpec`]: the strong rung's features, for the probes that clean labels;
- [`CeilingSpec`]: a rung trained on the ground-truth split (a weak teacher, or the ceiling PGR compares with);
- [`LabelSpec`]: a split labelled by a teacher that did not train on it (a weak ceiling, or an intermediate student);
- [`StudentSpec`]: a rung trained on a teacher's labels with one method, conflict setting and label filter;
- [`EnsembleSpec`]: the labels of several weak teachers combined;
- [`ReportSpec`]: the metrics and figures computed from every evaluated model's test predictions.

Each spec holds the settings that determine its stage and names the specs whose output it reads;
[`w2s_align.cache.StageCache`] makes the stage's cache key from both. The pipeline executes `plan.steps` in order,
the report reads `plan.models`, and the plan answers which no-conflict student a conflicted one is compared with
([`Plan.baseline`]). `w2s-align plan RECIPE` prints it ([`Plan.describe`]).

Example:

```python
>>> from w2s_align.plan import build_plan
>>> from w2s_align.recipe_yaml import load_recipe
>>> plan = build_plan(load_recipe("recipes/quickstart.yaml"))
>>> [spec.key for spec in plan.models][:3]
['minilm-l1.gt.seed0', 'minilm-l3.gt.seed0', 'minilm-l3.from-minilm-l1.xent.seed0']
```
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from .analysis.intervals import check_bootstrap_size
from .cache import REPORT_VERSION, Stage, StageCache, file_digests, rung_settings
from .controls import CHECK_PREFIX, CONTROLS, changes_training_only, check_of, identify, variant_label
from .errors import W2SInputError
from .options import LOSS_SETTINGS, SPLITS, ConflictSetting, FilterSetting
from .recipe import (
    AnalysisConfig,
    DataConfig,
    HelpfulDataConfig,
    PairConfig,
    Recipe,
    RungConfig,
    TrainingSettings,
    validation_size,
)
from .tasks import REGISTRY, TaskInfo

NO_CONFLICT = ConflictSetting()
NO_FILTER = FilterSetting()


class StageRunning(Protocol):
    """What runs the steps of a plan ([`w2s_align.stage_runner.StageRunner`]): a method a kind of step, which each
    step's `run` calls, so that a new kind of step brings its dispatch with it."""

    def train(self, spec: CeilingSpec | StudentSpec, stage: Stage) -> None: ...

    def label(self, spec: LabelSpec, stage: Stage) -> None: ...

    def sft(self, spec: SFTSpec, stage: Stage) -> None: ...

    def features(self, spec: FeatureSpec, stage: Stage) -> None: ...

    def ensemble(self, spec: EnsembleSpec, stage: Stage) -> None: ...

    def generative(self, spec: GenerativeSpec, stage: Stage) -> None: ...


class _Spec:
    # Whether the step trains or scores models (a Ray task of it asks for a GPU where the cluster has them).
    uses_models: ClassVar[bool] = True

    def __repr__(self) -> str:  # the stage name says which one; the settings are long
        return f"{type(self).__name__}({self.stage_name!r})"

    def run(self, runner: StageRunning, stage: Stage) -> None:
        """Run this step's stage with `runner` (the data, helpfulness and report stages are not steps)."""
        raise NotImplementedError(f"{type(self).__name__} is not a step a runner runs")


@dataclass(frozen=True, eq=False, repr=False)
class DataSpec(_Spec):
    """The data stage: the `gt`, `w2s` and `test` splits cut from `config` (local files hashed by content)."""

    config: DataConfig
    stage_name: ClassVar[str] = "data"

    def settings(self) -> dict[str, Any]:
        return {"data": dataclasses.asdict(self.config), "files": file_digests(self.config)}

    def upstream(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, eq=False, repr=False)
class HelpfulSpec(_Spec):
    """Helpfulness pairs for the implicit conflict, disjoint from the splits: `ratio` per weakly labelled pair."""

    config: HelpfulDataConfig
    ratio: float  # the largest ratio of the recipe: every implicit student draws its pairs from this one pool
    data: DataSpec
    stage_name: ClassVar[str] = "helpful"

    def settings(self) -> dict[str, Any]:
        return {"helpful": dataclasses.asdict(self.config), "ratio": self.ratio, "files": file_digests(self.config)}

    def upstream(self) -> dict[str, Any]:
        return {"data": self.data}


@dataclass(frozen=True, eq=False, repr=False)
class GenerativeSpec(_Spec):
    """A causal-LM rung finetuned as a language model on the texts of the `gt` and `w2s` splits, for one seed
    ([`w2s_align.generative`]): where the rung's ceiling and students start."""

    rung: RungConfig
    seed: int
    data: DataSpec

    @property
    def stage_name(self) -> str:
        return f"lm-{self.rung.name}-seed{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.rung.name} (language modeling on the task's texts)"

    def settings(self) -> dict[str, Any]:
        return {"rung": rung_settings(self.rung), "seed": self.seed}

    def upstream(self) -> dict[str, Any]:
        return {"data": self.data}

    def run(self, runner: StageRunning, stage: Stage) -> None:
        runner.generative(self, stage)


@dataclass(frozen=True, eq=False, repr=False)
class CeilingSpec(_Spec):
    """A rung trained by `task` on the ground-truth split, with the plain preference loss."""

    rung: RungConfig
    seed: int
    task: str
    task_settings: Mapping[str, Any]  # what the task's recipe settings add (`TaskInfo.determinants`)
    data: DataSpec
    tag: str = ""  # marks a model of another task than the recipe's, trained to supervise it (`rm`)
    start: GenerativeSpec | None = None  # the generatively finetuned model it starts from, if any
    sft: SFTSpec | None = None  # the supervised finetuning it starts from (a policy), if any
    role: ClassVar[str] = "ceiling"
    method: ClassVar[str] = "xent"
    conflict_alpha: ClassVar[float] = 0.0

    @property
    def name(self) -> str:
        """The model's name as a teacher: the rung, tagged when it belongs to another task."""
        return f"{self.rung.name}-{self.tag}" if self.tag else self.rung.name

    @property
    def key(self) -> str:
        """Names its predictions: `predictions/<key>.parquet`."""
        return f"{self.name}.gt.seed{self.seed}"

    @property
    def stage_name(self) -> str:
        return f"train-{self.name}-gt-seed{self.seed}"

    @property
    def pairs_key(self) -> str:
        """Names the pairs it trains on (its SFT stage's name)."""
        return self.key

    @property
    def label(self) -> str:
        return f"{self.rung.name} (ground truth" + (f", {self.task} model)" if self.tag else ")")

    @property
    def split(self) -> str:
        """The split it trains on."""
        return "gt"

    def settings(self) -> dict[str, Any]:
        rung = rung_settings(self.rung)
        return {"task": self.task, "rung": rung, "seed": self.seed, "labels": "ground-truth", **self.task_settings}

    def upstream(self) -> dict[str, Any]:
        return {
            "data": self.data,
            **({"start": self.start} if self.start else {}),
            **({"sft": self.sft} if self.sft else {}),
        }

    def info(self) -> dict[str, Any]:
        """What `metrics.json` records of the model."""
        return {"role": self.role, "rung": self.rung.name, "seed": self.seed}

    def run(self, runner: StageRunning, stage: Stage) -> None:
        runner.train(self, stage)


@dataclass(frozen=True, eq=False, repr=False)
class LabelSpec(_Spec):
    """A training split labelled by `teacher` (soft labels, saved as the dataset `labels/<key>/`): the one the teacher
    did not train on. A ceiling (trained on `gt`) labels `w2s`; bootstrapping's intermediate student, trained on `w2s`,
    labels `gt` for the next rung, as in Yang et al.'s code, and so on, alternating: no model labels pairs it trained
    on, and a chain costs no pairs."""

    teacher: CeilingSpec | StudentSpec
    data: DataSpec

    @property
    def key(self) -> str:
        return f"{self.teacher.name}.seed{self.teacher.seed}"

    @property
    def stage_name(self) -> str:
        return f"labels-{self.key}"

    @property
    def task(self) -> str:
        return self.teacher.task

    @property
    def split(self) -> str:
        return "gt" if self.teacher.split == "w2s" else "w2s"

    def settings(self) -> dict[str, Any]:
        return {"split": self.split}

    def upstream(self) -> dict[str, Any]:
        return {"model": self.teacher, "data": self.data}

    def run(self, runner: StageRunning, stage: Stage) -> None:
        runner.label(self, stage)


@dataclass(frozen=True, eq=False, repr=False)
class EnsembleSpec(_Spec):
    """A weak ensemble for one seed: its members' ceilings combined into one teacher. Its stage writes the combined
    test predictions (the "weak" row of its students) and the combined labels of the split the members labelled, so
    it is both a reported model and the labels its students learn from."""

    members: tuple[LabelSpec, ...]  # each member ceiling's labels of the weak-to-strong split
    size: int  # members per rung
    combine: str
    seed: int
    role: ClassVar[str] = "ensemble"

    @property
    def rungs(self) -> list[str]:
        return list(dict.fromkeys(member.teacher.rung.name for member in self.members))

    @property
    def name(self) -> str:
        """`<rung>+<rung>[x<size>][-probability]`: the ensemble across seeds, and its name as a teacher."""
        suffix = (f"x{self.size}" if self.size > 1 else "") + ("-probability" if self.combine == "probability" else "")
        return "+".join(self.rungs) + suffix

    @property
    def key(self) -> str:
        return f"{self.name}.ensemble.seed{self.seed}"

    @property
    def stage_name(self) -> str:
        return f"ensemble-{self.name}-seed{self.seed}"

    @property
    def label(self) -> str:
        size = f", {self.size} seeds each" if self.size > 1 else ""
        return f"{' + '.join(self.rungs)} (ensemble of {len(self.members)}{size}, {self.combine})"

    @property
    def task(self) -> str:
        return self.members[0].task

    @property
    def split(self) -> str:
        """The split its labels cover (its members trained on the other)."""
        return self.members[0].split

    def settings(self) -> dict[str, Any]:
        return {"combine": self.combine}

    def upstream(self) -> dict[str, Any]:
        return {f"member{i}": member for i, member in enumerate(self.members)}

    def info(self) -> dict[str, Any]:
        """What `metrics.json` records of the model."""
        members = [member.teacher.key for member in self.members]
        return {"role": self.role, "members": members, "combine": self.combine, "seed": self.seed}

    uses_models: ClassVar[bool] = False  # it combines its members' labels

    def run(self, runner: StageRunning, stage: Stage) -> None:
        runner.ensemble(self, stage)


@dataclass(frozen=True, eq=False, repr=False)
class FeatureSpec(_Spec):
    """The strong rung's frozen pretrained features of a split's pairs, for the probes that clean weak labels
    ([`w2s_align.probes`])."""

    rung: RungConfig
    split: str
    task: str
    data: DataSpec

    @property
    def stage_name(self) -> str:
        return f"features-{self.rung.name}-{self.split}"

    def settings(self) -> dict[str, Any]:
        return {"rung": rung_settings(self.rung), "split": self.split, "task": self.task}

    def upstream(self) -> dict[str, Any]:
        return {"data": self.data}

    def run(self, runner: StageRunning, stage: Stage) -> None:
        runner.features(self, stage)


@dataclass(frozen=True, eq=False, repr=False)
class StudentSpec(_Spec):
    """A rung trained by `task` on the labels of its `teacher`: one method, conflict setting and label filter.

    `weak` is the first teacher of the chain and `via` the intermediate rungs before this student (bootstrapping);
    `loss` holds the loss settings the method reads.
    """

    rung: RungConfig
    weak: str
    via: tuple[str, ...]
    method: str
    conflict: ConflictSetting
    label_filter: FilterSetting
    filter_threshold: float
    seed: int
    task: str
    task_settings: Mapping[str, Any]
    loss: Mapping[str, Any]
    labels: LabelSpec | EnsembleSpec
    helpful: HelpfulSpec | None = None
    start: GenerativeSpec | None = None  # the generatively finetuned model it starts from, if any
    features: FeatureSpec | None = None  # the strong rung's features, for a probe filter
    probe: Mapping[str, Any] | None = None  # the probe settings, for a probe filter
    variant: str | None = None  # the control or check it is, told apart by name (`w2s_align.controls`)
    oracle: LabelSpec | None = None  # the strong ceiling's labels of its split: what a deceiver check reads
    pad_ratio: float = 0.0  # > 0: trains on `round(pad_ratio * n)` more of its own pairs, as many steps as implicit
    sft: SFTSpec | None = None  # the supervised finetuning it starts from (a policy), if any
    role: ClassVar[str] = "student"

    @property
    def control(self) -> str | None:
        """The control it is (a record of [`w2s_align.controls.CONTROLS`]), or None for the students the experiment
        asks about."""
        return identify(self)

    @property
    def strong(self) -> str:
        return self.rung.name

    @property
    def name(self) -> str:
        """`<strong>.from-<weak>[-via-<rung>...].<method>[.<conflict>][.<filter>-filter]`: the student across seeds,
        and its name as a teacher."""
        return self._name(self.method)

    @property
    def pairs_key(self) -> str:
        """Names the pairs it trains on (its SFT stage's name): its key without the method, which changes the loss,
        not the pairs; but with it after a bootstrapping chain, whose intermediate students (trained by the method)
        label the pairs."""
        return f"{self._name(self.method if self.via else None)}.seed{self.seed}"

    def _name(self, method: str | None) -> str:
        parts = [self.strong, "from-" + self.weak + "".join(f"-via-{rung}" for rung in self.via)]
        parts += [method] if method else []
        if self.conflict.kind != "none":
            parts.append(self.conflict.label)
        if self.pad_ratio:
            parts.append(f"padded-{self.pad_ratio:g}")
        if self.label_filter.kind != "none":
            parts.append(f"{self.label_filter.label}-filter")
        if self.variant:
            parts.append(self.variant)
        return ".".join(parts)

    @property
    def key(self) -> str:
        """Names its predictions: `predictions/<key>.parquet`."""
        return f"{self.name}.seed{self.seed}"

    @property
    def stage_name(self) -> str:
        return f"train-{self.key}"

    @property
    def split(self) -> str:
        """The split it trains on: the one its labels cover."""
        return self.labels.split

    @property
    def conflict_alpha(self) -> float:
        """Weight of the explicit conflict term in the loss (0 without it)."""
        return self.conflict.strength if self.conflict.kind == "explicit" else 0.0

    @property
    def label(self) -> str:
        """`<strong> <- <weak> [-> <via> ...] (<method>[, <conflict>][, <filter> filter])`: rows of the reports."""
        extras = [self.method]
        if self.conflict.kind != "none":
            extras.append(self.conflict.label)
        if self.pad_ratio:
            extras.append(f"steps of implicit-{self.pad_ratio:g}")
        if self.label_filter.kind != "none":
            extras.append(f"{self.label_filter.label} filter")
        if self.variant:
            extras.append(variant_label(self.variant))
        chain = " -> ".join([self.weak, *self.via])
        return f"{self.strong} <- {chain} ({', '.join(extras)})"

    @property
    def mitigation(self) -> str:
        parts = ["bootstrap via " + ", ".join(self.via)] if self.via else []
        if self.label_filter.kind != "none":
            parts.append(f"{self.label_filter.label} filter")
        return "; ".join(parts) or "none"

    @property
    def teacher(self) -> CeilingSpec | StudentSpec | EnsembleSpec:
        """The model whose labels it learns from: its labels' teacher, or a weak ensemble."""
        return self.labels if isinstance(self.labels, EnsembleSpec) else self.labels.teacher

    @property
    def chain(self) -> list[CeilingSpec | StudentSpec | EnsembleSpec]:
        """Its teachers, from the weak ceiling to the intermediate student whose labels it learns from."""
        teacher = self.teacher
        return (teacher.chain if isinstance(teacher, StudentSpec) else []) + [teacher]

    def settings(self) -> dict[str, Any]:
        out = {
            "task": self.task,
            "rung": rung_settings(self.rung),
            "seed": self.seed,
            "method": self.method,
            "loss": dict(self.loss),
            **self.task_settings,
        }
        if self.conflict.kind != "none":
            out["conflict"] = dataclasses.asdict(self.conflict)
        if self.variant:
            out["variant"] = self.variant
        if self.pad_ratio:
            out["pad_ratio"] = self.pad_ratio
        if self.probe is not None:
            out["filter"] = [self.label_filter.label, dict(self.probe)]
        elif self.label_filter.kind != "none":
            out["filter"] = [self.label_filter.label, self.filter_threshold]
        return out

    def upstream(self) -> dict[str, Any]:
        extra = {"helpful": self.helpful} if self.helpful else {}
        extra |= {"start": self.start} if self.start else {}
        extra |= {"sft": self.sft} if self.sft else {}
        extra |= {"oracle": self.oracle} if self.oracle else {}
        return {"labels": self.labels, **extra, **({"features": self.features} if self.features else {})}

    def info(self) -> dict[str, Any]:
        """What `metrics.json` records of the model."""
        return {
            "role": self.role,
            "rung": self.strong,
            "weak": self.weak,
            "via": list(self.via),
            "method": self.method,
            "conflict": self.conflict.label,
            "label_filter": self.label_filter.label,
            "seed": self.seed,
            "control": self.control,
        }

    def run(self, runner: StageRunning, stage: Stage) -> None:
        runner.train(self, stage)


@dataclass(frozen=True, eq=False, repr=False)
class SFTSpec(_Spec):
    """The supervised finetuning a policy starts from: its rung trained on the preferred response of each pair its
    model trains on (less the validation pairs), at the model's training seed, for `epochs` at `learning_rate` (None:
    the rung's). Students whose pairs prefer the same responses (they differ in their method or explicit conflict
    only) share it."""

    model: CeilingSpec | StudentSpec  # the model whose pairs it trains on, without its SFT (and explicit conflict)
    epochs: float
    learning_rate: float | None

    @property
    def stage_name(self) -> str:
        return f"sft-{self.model.pairs_key}"

    @property
    def rung(self) -> RungConfig:
        return self.model.rung

    @property
    def seed(self) -> int:
        return self.model.seed

    @property
    def task(self) -> str:
        return self.model.task

    def settings(self) -> dict[str, Any]:
        pairs = {key: value for key, value in self.model.settings().items() if key not in ("method", "loss")}
        return {**pairs, "sft": [self.epochs, self.learning_rate]}

    def upstream(self) -> dict[str, Any]:
        return self.model.upstream()

    def run(self, runner: StageRunning, stage: Stage) -> None:
        runner.sft(self, stage)


ModelSpec = CeilingSpec | StudentSpec | EnsembleSpec
Step = GenerativeSpec | FeatureSpec | SFTSpec | CeilingSpec | LabelSpec | EnsembleSpec | StudentSpec


@dataclass(frozen=True, eq=False, repr=False)
class ReportSpec(_Spec):
    """The run's metrics (accuracy, PGR, deception statistics with bootstrap intervals) and figures, from the test
    predictions of `models` under the recipe's analysis settings."""

    analysis: AnalysisConfig
    recipe: str
    seeds: tuple[int, ...]
    models: tuple[ModelSpec, ...]
    stage_name: ClassVar[str] = "report"

    def settings(self) -> dict[str, Any]:
        analysis = dataclasses.asdict(self.analysis)
        return {"analysis": analysis, "recipe": self.recipe, "seeds": list(self.seeds), "version": REPORT_VERSION}

    def upstream(self) -> dict[str, Any]:
        return {spec.key: spec for spec in self.models}


def no_optimizer_step(settings: TrainingSettings, pairs: int, processes: int) -> str | None:
    """Why `pairs` training pairs fill no optimizer step under `settings` and `processes`, or None when they do."""
    held = validation_size(settings.validation_fraction, pairs)
    batch = settings.per_device_train_batch_size * settings.gradient_accumulation_steps * processes
    if pairs - held >= batch:
        return None
    return (
        f"{pairs - held} training pairs (after {held} validation pairs) fill no optimizer step of {batch} pairs "
        "(per_device_train_batch_size x gradient_accumulation_steps x processes)"
    )


# The fewest pairs a model is evaluated on. The report's 95% accuracy interval (one seed), measured by
# benchmarks/bootstrap_coverage.py (1,000 worlds a cell): coverage 0.94-0.97 from 30 pairs on for true accuracies
# 0.6-0.9; 0.86-0.96 at 20; 0.64-0.94 at 10; 0.42-0.84 at 5. Below 20 the run is refused; 20-29 pairs cover less than
# nominal near 0.9 accuracy (the test suite's tiny runs use 20-24 pairs, so the bound is not yet 30).
MIN_TEST_PAIRS = 20


@dataclass
class Plan:
    """Every stage of a recipe: `steps` in the order they run (each once), and `models`, the evaluated models the
    report covers (the ceilings and the final students, in training order)."""

    recipe: Recipe
    data: DataSpec
    helpful: HelpfulSpec | None
    steps: list[Step]
    models: list[ModelSpec]

    def __post_init__(self):
        self._models = {spec.key: spec for spec in self.models}
        self._deception_keys: set[str] = set()
        for spec in self.models:
            if isinstance(spec, StudentSpec) and spec.conflict.kind != "none" and spec.control is None:
                twin = self.baseline(spec)
                others = [twin, *self.controls(spec).values(), *self.checks(spec).values()] if twin is not None else []
                self._deception_keys |= {spec.key, *(other.key for other in others)}
        self._ceilings = {
            (s.rung.name, s.seed): s for s in self.models if isinstance(s, CeilingSpec) and s.task == self.recipe.task
        }

    @property
    def report(self) -> ReportSpec:
        recipe = self.recipe
        return ReportSpec(recipe.analysis, recipe.name, tuple(recipe.seeds), tuple(self.models))

    @property
    def labels(self) -> list[LabelSpec]:
        return [step for step in self.steps if isinstance(step, LabelSpec)]

    def step(self, stage_name: str) -> Step:
        """The step whose stage is named `stage_name` (a plan's stage names are distinct): how a worker process or a
        Ray task, which builds the plan again from the recipe, finds the stage it was handed."""
        found = [step for step in self.steps if step.stage_name == stage_name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} stages of this plan are named {stage_name!r}")
        return found[0]

    @property
    def tasks(self) -> list[str]:
        """The tasks that train or label in this plan, the recipe's first."""
        trained = (step.task for step in self.steps if not isinstance(step, GenerativeSpec))  # the one without a task
        return list(dict.fromkeys([self.recipe.task, *trained]))

    @property
    def rungs(self) -> list[RungConfig]:
        """The rungs the plan trains, in ladder order."""
        names = {step.rung.name for step in self.steps if isinstance(step, (CeilingSpec, StudentSpec))}
        return [rung for rung in self.recipe.ladder if rung.name in names]

    def ceiling(self, rung: str, seed: int) -> CeilingSpec:
        """The ceiling of `rung` trained by the recipe's task, for `seed`."""
        return self._ceilings[rung, seed]

    def twin(self, student: StudentSpec) -> StudentSpec:
        """The no-conflict twin a conflicted student is measured against (same teacher, method, filter and seed),
        whether or not the plan has it: for the implicit conflict with controls, the twin trained as many optimizer
        steps ([`StudentSpec.pad_ratio`])."""
        return _twin(student, self.recipe.controls)

    def baseline(self, student: StudentSpec) -> StudentSpec | None:
        """The no-conflict twin of a conflicted student ([`Plan.twin`]), if the plan has it."""
        if student.conflict.kind == "none":
            return None
        return self._models.get(self.twin(student).key)

    def controls(self, student: StudentSpec) -> dict[str, StudentSpec]:
        """The controls of a conflicted student's deception statistics ([`w2s_align.controls.CONTROLS`] that the
        deception verdicts read: `placebo`, `random-direction`, `imitation`), those the plan has."""
        if student.conflict.kind == "none" or student.control is not None:
            return {}
        twin = self.twin(student)
        wanted = {name: c.derive(student, twin) for name, c in CONTROLS.items() if c.deception and c.applies(student)}
        return {name: self._models[spec.key] for name, spec in wanted.items() if spec.key in self._models}

    def checks(self, student: StudentSpec) -> dict[str, StudentSpec]:
        """The checks of a conflicted student's verdicts (`conflicts.checks`) that the plan has: students judged as if
        they were it, against its twin and controls."""
        if student.conflict.kind == "none" or student.control is not None:
            return {}
        wanted = _checks(self.recipe, student)
        return {name: self._models[spec.key] for name, spec in wanted.items() if spec.key in self._models}

    def scores_training(self, spec: StudentSpec) -> bool:
        """Whether a student saves its predictions on the split it learned from (`train_predictions.parquet`): the
        deception comparisons read its agreement with its teacher there (a conflicted student, its twin, their
        controls)."""
        return spec.key in self._deception_keys

    def counterparts(self, student: StudentSpec) -> list[tuple[str, StudentSpec]]:
        """The students a student is compared with, each with what differs, those the plan has: for a method other
        than `xent`, the naive `xent` student of the same teacher, conflict and mitigation (`"method"`); for a
        bootstrapped or filtered student, the same teacher's student without either (`"mitigation"`); for a
        confidence-filtered student, the student of a random subset of the same size (`"random subset"`); for the
        student of a weak ensemble, the same student of the ensemble's first member alone (`"ensemble"`). Controls
        have none: they are compared in the deception statistics."""
        if student.control is not None:
            return []
        wanted = []
        if student.method != "xent":
            wanted.append(("method", dataclasses.replace(student, method="xent")))
        if student.via or student.label_filter.kind != "none":
            wanted.append(("mitigation", dataclasses.replace(student, via=(), label_filter=NO_FILTER)))
        if student.label_filter.kind == "confidence":
            wanted.append(("random subset", CONTROLS["random-subset"].derive(student, self.twin(student))))
        if isinstance(student.labels, EnsembleSpec):
            wanted.append(("ensemble", dataclasses.replace(student, weak=student.labels.rungs[0])))
        return [(factor, self._models[spec.key]) for factor, spec in wanted if spec.key in self._models]

    def check_sizes(self, sizes: Mapping[str, int], processes: int = 1) -> None:
        """Stop on settings that leave a model nothing to learn from splits of `sizes` pairs: fewer training pairs
        (after the validation pairs) than one optimizer step takes, or a probe with more neighbours than a fold
        holds; and on a test split too small for its accuracy intervals to cover ([`MIN_TEST_PAIRS`])."""
        check_bootstrap_size(sizes["test"], self.recipe.analysis.n_bootstrap, "analysis.n_bootstrap")
        if sizes["test"] < MIN_TEST_PAIRS:
            key = "data.validation_size" if self.recipe.data.evaluate_on == "validation" else "data.test_size"
            raise W2SInputError(
                f"{key}: {sizes['test']} pairs to evaluate on; the accuracy intervals (a bootstrap over these pairs) "
                f"hold their coverage from {MIN_TEST_PAIRS} pairs on (at 10 pairs and 90% accuracy a 95% interval "
                "holds the true accuracy 64% of the time)"
            )
        for step in self.steps:
            if not isinstance(step, CeilingSpec | StudentSpec):
                continue
            pairs = sizes[step.split]
            short = no_optimizer_step(step.rung.training, pairs, processes)
            if short:
                raise W2SInputError(f"ladder rung {step.rung.name!r}: of the {step.split} split, {short}")
            if isinstance(step, StudentSpec) and step.probe is not None:
                fold = pairs - -(-pairs // step.probe["folds"])  # what each probe is fit on: the other folds
                if step.label_filter.probe == "knn" and step.probe["k"] >= fold:
                    raise W2SInputError(
                        f"probe.k is {step.probe['k']}, but a probe fold holds {fold} pairs of {step.split}"
                    )

    def describe(self, cache: StageCache) -> str:
        """Every stage, whether it is cached, and how many pairs it trains on: the dry run of `w2s-align plan`."""
        data = cache.stage(self.data)
        sizes = data.summary() if data.done else {s: getattr(self.recipe.data, f"{s}_size") for s in SPLITS}
        n = {split: "all" if sizes[split] is None else sizes[split] for split in SPLITS}
        config = self.recipe.data
        names = dict(zip(SPLITS, SPLITS))
        if config.evaluate_on == "validation":  # the split every model is evaluated on is cut from the gt split
            n["test"] = sizes["test"] if data.done else config.validation_size
            names["test"] = "validation (of gt; the test split is not read)"
        rows = [(data, ", ".join(f"{names[split]} {n[split]}" for split in SPLITS) + " pairs")]
        if self.helpful is not None:
            size = math.ceil(self.helpful.ratio * n["w2s"]) if isinstance(n["w2s"], int) else "enough"
            rows.append((cache.stage(self.helpful), f"{size} helpfulness pairs ({self.helpful.config.source})"))
        for step in self.steps:
            stage = cache.stage(step)
            if isinstance(step, GenerativeSpec):
                rows.append((stage, f"language modeling on the texts of gt {n['gt']} + w2s {n['w2s']} pairs"))
            elif isinstance(step, SFTSpec):
                rows.append(
                    (stage, f"supervised finetuning on the preferred responses of the pairs of {step.model.key}")
                )
            elif isinstance(step, FeatureSpec):
                rows.append((stage, f"features of {n[step.split]} {step.split} pairs"))
            elif isinstance(step, EnsembleSpec):
                rows.append((stage, f"{len(step.members)} members' labels of {step.split} combined ({step.combine})"))
            elif isinstance(step, CeilingSpec):
                rows.append((stage, f"{n['gt']} ground-truth pairs"))
            elif isinstance(step, LabelSpec):
                rows.append((stage, f"labels {n[step.split]} {step.split} pairs"))
            else:
                rows.append((stage, self._student_pairs(step, cache, n[step.split])))
        rows.append((cache.stage(self.report), f"metrics and figures of {len(self.models)} models"))
        cached = sum(stage.done for stage, _ in rows)
        recipe = self.recipe
        lines = [
            f"{recipe.name}: {len(rows)} stages in {recipe.run_dir}, {len(rows) - cached} to run, {cached} cached "
            f"({len(recipe.seeds)} seed(s), {len(recipe.pairs)} pair(s), {len(recipe.methods_used)} method(s), "
            f"task {recipe.task})",
        ]
        width = max(len(stage.dir.name) for stage, _ in rows) + 2
        lines += [f"  {'cached' if s.done else 'to run':<7} {s.dir.name:<{width}} {what}" for s, what in rows]
        return "\n".join(lines)

    @staticmethod
    def _student_pairs(spec: StudentSpec, cache: StageCache, n_split: int | str) -> str:
        """How many pairs a student trains on: its weak labels (all, or those its filter keeps, exact once the labels
        exist), plus the helpfulness pairs of the implicit conflict."""
        kept, text = n_split, f"{n_split} weak labels of {spec.split}"
        if spec.probe is not None:
            probe, action = spec.label_filter.probe, spec.label_filter.action
            kept = n_split if action == "relabel" else None
            text = f"{'at most ' if kept is None else ''}{n_split} weak labels of {spec.split}"
            text += f" ({action} where a {probe} probe on {spec.strong}'s features disagrees)"
        elif spec.label_filter.kind != "none":
            labels = cache.stage(spec.labels)
            kept = None
            if labels.done:  # read with `datasets`, imported here: a plan of unlabelled stages stays light
                from .labeling import filter_labels, load_labels

                kept = filter_labels(load_labels(labels.dir), spec.label_filter.kind, spec.filter_threshold).num_rows
            text = f"{'at most ' if kept is None else f'{kept} of '}{n_split} weak labels of {spec.split}"
            random = spec.label_filter.kind == "random"
            what = "a random subset of the size of" if random else f"{spec.label_filter.label} filter:"
            text += f" ({what} confidence >= {spec.filter_threshold})"
        if spec.pad_ratio:
            text += f" + {spec.pad_ratio:g} x as many of them again (the steps of implicit-{spec.pad_ratio:g})"
        if spec.conflict.kind == "implicit":
            ratio = spec.conflict.strength
            text += (
                f" + {round(ratio * kept)} helpfulness pairs"
                if isinstance(kept, int)
                else f" + {ratio:g} helpfulness pair(s) per kept label"
            )
            if spec.conflict.direction == "random":
                text += " labelled by coin toss"
        elif spec.conflict.kind == "explicit" and spec.conflict.direction == "random":
            text += " (conflict toward coin-toss responses)"
        if spec.variant:
            text += f" ({variant_label(spec.variant)})"
        return text


def conflict_settings(recipe: Recipe, pair: PairConfig, method: str) -> list[ConflictSetting]:
    """The conflict settings of a pair's student method: the pair's (default: the recipe's), only `none` for methods
    outside `conflicts.methods`."""
    conflicts = recipe.conflicts
    settings = []
    for kind in pair.conflicts or conflicts.settings:
        if kind != "none" and conflicts.methods is not None and method not in conflicts.methods:
            continue
        strengths = {"none": [0.0], "explicit": conflicts.alphas, "implicit": conflicts.ratios}[kind]
        settings += [ConflictSetting(kind, strength) for strength in strengths]
    return settings


def build_plan(recipe: Recipe) -> Plan:
    """Expand a recipe into its [`Plan`]: for every seed, the ceilings of the rungs the pairs use; for every pair and
    method, the labels of its weak teacher, the bootstrapping chain (each intermediate rung learns from the previous
    teacher's labels, then labels for the next), and a student per conflict setting and label filter."""
    return _PlanBuilder(recipe).build()


class _PlanBuilder:
    """The steps and models of one recipe's plan as they are added: a stage several students share (a ceiling, its
    labels) is planned once."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.task = REGISTRY[recipe.task]
        self.supervisor = REGISTRY[self.task.supervisor(recipe)]
        self.data = DataSpec(recipe.data)
        conflicts = recipe.conflicts
        implicit = "implicit" in conflicts.settings
        self.helpful = HelpfulSpec(conflicts.helpful, max(conflicts.ratios), self.data) if implicit else None
        self.steps: dict[str, Step] = {}
        self.models: dict[str, ModelSpec] = {}

    def build(self) -> Plan:
        recipe = self.recipe
        names = {name for pair in recipe.pairs for name in (pair.weak, pair.strong, *pair.via)}
        names |= {name for pair in recipe.pairs if pair.ensemble for name in pair.ensemble.rungs}
        for seed in recipe.seeds:
            for rung in recipe.ladder:
                if rung.name in names:
                    spec = self.ceiling(rung.name, seed, self.task)
                    self.models[spec.key] = spec
            for pair in recipe.pairs:
                for method in pair.methods or recipe.methods:
                    self.pair(pair, method, seed)
        return Plan(recipe, self.data, self.helpful, list(self.steps.values()), list(self.models.values()))

    def pair(self, pair, method: str, seed: int) -> None:
        """The students of one pair, method and seed: their teacher (a weak ceiling, a bootstrapping chain or an
        ensemble) and its labels, a student a conflict setting and label filter."""
        recipe = self.recipe
        named = pair.label_filters if pair.label_filters is not None else recipe.label_filters
        filters = [FilterSetting.named(name) for name in named]
        if pair.ensemble is not None:  # the ensemble is the weak model of its students' reports
            labels = self.ensemble(pair, seed)
            self.models.setdefault(labels.key, labels)
            weak, via = labels.name, ()
        else:
            teacher = self.ceiling(pair.weak, seed, self.supervisor)
            self.models.setdefault(teacher.key, teacher)  # a supervisor of another task is reported too
            for depth, middle in enumerate(pair.via):
                labels = self.add(LabelSpec(teacher, self.data))
                teacher = self.student(
                    middle, pair.weak, pair.via[:depth], method, NO_CONFLICT, NO_FILTER, seed, labels
                )
            labels = self.add(LabelSpec(teacher, self.data))
            weak, via = pair.weak, pair.via
        for conflict in conflict_settings(recipe, pair, method):
            for label_filter in filters:
                self.asked(self.student(pair.strong, weak, via, method, conflict, label_filter, seed, labels))

    def add(self, spec: Step) -> Step:
        planned = self.steps.setdefault(spec.stage_name, spec)
        if planned is not spec and _determinants(planned) != _determinants(spec):
            raise W2SInputError(
                f"two different stages would share the name {spec.stage_name!r} (rung names build stage names: "
                "rename a rung so that no name reads as another's part, e.g. '-via-' or a method)"
            )
        return planned

    def start(self, rung: str, seed: int) -> GenerativeSpec | None:
        config = self.recipe.rung(rung)
        return self.add(GenerativeSpec(config, seed, self.data)) if config.generative.epochs > 0 else None

    def with_sft(self, spec: CeilingSpec | StudentSpec) -> CeilingSpec | StudentSpec:
        """`spec` starting from the supervised finetuning on its pairs, where its task starts a model so."""
        sft = REGISTRY[spec.task].sft(self.recipe)
        if sft is None:
            return spec
        plain = dataclasses.replace(spec, sft=None)
        # The SFT reads the pairs' preferred responses, not the loss or the preference training's settings: students
        # that differ in their method, their explicit conflict (a loss term) or, as a control or check, only in how
        # the preference training runs (batch order, epochs, learning rate) share it.
        pairs_of = plain
        if isinstance(plain, StudentSpec) and plain.conflict.kind == "explicit":
            pairs_of = dataclasses.replace(pairs_of, conflict=NO_CONFLICT)
        if isinstance(plain, StudentSpec) and plain.variant and changes_training_only(plain.variant):
            pairs_of = dataclasses.replace(pairs_of, variant=None, rung=self.recipe.rung(plain.strong))
        return dataclasses.replace(plain, sft=self.add(SFTSpec(pairs_of, *sft)))

    def ceiling(self, rung: str, seed: int, trainer: TaskInfo) -> CeilingSpec:
        tag = "" if trainer is self.task else trainer.tag
        settings = trainer.determinants(self.recipe)
        spec = CeilingSpec(
            self.recipe.rung(rung), seed, trainer.name, settings, self.data, tag, self.start(rung, seed)
        )
        return self.add(self.with_sft(spec))

    def student(self, strong, weak, via, method, conflict, label_filter, seed, labels) -> StudentSpec:
        recipe, task = self.recipe, self.task
        loss = {name: getattr(recipe.loss, name) for name in LOSS_SETTINGS[method]}
        probe = label_filter.kind == "probe"
        features = self.add(FeatureSpec(recipe.rung(strong), labels.split, task.name, self.data)) if probe else None
        helpful = self.helpful if conflict.kind == "implicit" else None
        spec = StudentSpec(
            recipe.rung(strong), weak, tuple(via), method, conflict, label_filter, recipe.filter_threshold, seed,
            task.name, task.determinants(recipe), loss, labels, helpful, self.start(strong, seed), features,
            dataclasses.asdict(recipe.probe) if probe else None,
        )  # fmt: skip
        return self.add(self.with_sft(spec))

    def asked(self, spec: StudentSpec) -> None:
        """A student the experiment asks about, with its controls and the checks of its deception verdicts (for a
        student of the weak-to-strong split, which the strong ceiling did not train on and can label)."""
        self.models[spec.key] = spec
        if not self.recipe.controls:
            return
        for control in _controls(spec):
            self.models.setdefault(control.key, self.add(self.with_sft(control)))
        if spec.conflict.kind == "none" or spec.split != "w2s":
            return
        for name, derived in _checks(self.recipe, spec).items():
            if check_of(name)[0].deceptive:  # it reads the strong ceiling's labels of its split
                strong = self.ceiling(spec.strong, spec.seed, self.task)
                derived = dataclasses.replace(derived, oracle=self.add(LabelSpec(strong, self.data)))
            self.models.setdefault(derived.key, self.add(self.with_sft(derived)))

    def ensemble(self, pair, seed: int) -> EnsembleSpec:
        config = pair.ensemble
        members = [
            self.add(LabelSpec(self.ceiling(rung, seed + 1000 * j, self.supervisor), self.data))
            for rung in (pair.weak, *config.rungs)
            for j in range(config.seeds)
        ]
        return self.add(EnsembleSpec(tuple(members), config.seeds, config.combine, seed))


def _twin(student: StudentSpec, controls: bool) -> StudentSpec:
    """The no-conflict twin a conflicted student is measured against: with controls, an implicit student's twin trains
    on as many pairs (so as many optimizer steps)."""
    pad = student.conflict.strength if controls and student.conflict.kind == "implicit" else 0.0
    return dataclasses.replace(student, conflict=NO_CONFLICT, pad_ratio=pad, helpful=None)


def _determinants(spec: Step) -> tuple:
    """What makes a stage the stage it is: its kind, its settings and the stages it reads (by name)."""
    upstream = {role: source.stage_name for role, source in spec.upstream().items()}
    return type(spec), spec.settings(), upstream


def _checks(recipe: Recipe, student: StudentSpec) -> dict[str, StudentSpec]:
    """The checks of `recipe` (`conflicts.checks`) derived from a conflicted student's twin, by name (a deceiver's
    `oracle` is left to the plan, which plans the strong ceiling's labels)."""
    twin = _twin(student, controls=True)
    return {name: check_of(name)[0].derive(twin, CHECK_PREFIX + name) for name in recipe.conflicts.checks}


def _controls(spec: StudentSpec) -> list[StudentSpec]:
    """The control students a student needs, and theirs: for a conflicted one its twin (trained as many steps as an
    implicit student), and unless it is itself a control, every record of [`w2s_align.controls.CONTROLS`] that
    applies to it (derived from it and its twin)."""
    twin = _twin(spec, controls=True)
    out = [twin] if spec.conflict.kind != "none" else []
    if spec.control is None:
        derived = (control.derive(spec, twin) for control in CONTROLS.values() if control.applies(spec))
        out += [control for control in derived if control is not twin]  # the budget control is the twin itself
    return out + [nested for control in out for nested in _controls(control)]
