"""The specs of a plan's stages: what each stage computes, as typed records, before anything trains.

- [`DataSpec`]: the three splits; [`HelpfulSpec`]: the helpfulness pairs of the implicit conflict;
- [`GenerativeSpec`]: a rung finetuned as a language model first; [`SFTSpec`]: the supervised finetuning a policy
  starts from; [`FeatureSpec`]: the strong rung's features, for the probes that clean labels;
- [`CeilingSpec`]: a rung trained on the ground-truth split (a weak teacher, or the ceiling PGR compares with);
- [`LabelSpec`]: a split labelled by a teacher that did not train on it (a weak ceiling, or an intermediate student);
- [`StudentSpec`]: a rung trained on a teacher's labels with one method, conflict setting and label filter;
- [`EnsembleSpec`]: the labels of several weak teachers combined;
- [`ReportSpec`]: the metrics and figures computed from every evaluated model's test predictions.

Each spec holds the settings that determine its stage and names the specs whose output it reads;
[`w2s_align.cache.StageCache`] makes the stage's cache key from both. A step runs itself through the
[`StageRunning`] method of its kind (`spec.run(runner, stage)`). [`w2s_align.plan_builder.build_plan`] makes them
from a recipe; [`w2s_align.plan.Plan`] holds them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .cache import REPORT_VERSION, Stage, StageCache, file_digests, rung_settings
from .controls import identify, variant_label
from .options import ConflictSetting, FilterSetting
from .recipe import (
    AnalysisConfig,
    DataConfig,
    HelpfulDataConfig,
    RungConfig,
)

if TYPE_CHECKING:
    from datasets import DatasetDict

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

    def work(self, n: Mapping[str, int | str], cache: StageCache) -> str:
        """What the step trains on or computes, for `w2s-align plan`: `n` the splits' sizes (a number, or "all"),
        `cache` the run's stages (a filter's kept labels are counted once its teacher's labels exist)."""
        raise NotImplementedError(f"{type(self).__name__} is not a step a runner runs")


@dataclass(frozen=True, eq=False, repr=False)
class DataSpec(_Spec):
    """The data stage: the `gt`, `w2s` and `test` splits cut from `config` (local files hashed by content), as
    preference pairs or, with `examples`, as classification examples (the task's [`TaskInfo.examples`])."""

    config: DataConfig
    examples: bool = False
    stage_name: ClassVar[str] = "data"

    def settings(self) -> dict[str, Any]:
        settings = {"data": dataclasses.asdict(self.config), "files": file_digests(self.config)}
        return {**settings, "examples": True} if self.examples else settings  # pair runs keep their keys

    @property
    def unit(self) -> str:
        """What the splits hold, in the messages: `pairs` or `examples`."""
        return "examples" if self.examples else "pairs"

    def load(self) -> DatasetDict:
        """Load and cut the splits ([`w2s_align.data.load_splits`] or, for examples,
        [`w2s_align.classification_data.load_classification_splits`]); raises `W2SInputError`."""
        if self.examples:
            from .classification_data import load_classification_splits

            return load_classification_splits(self.config)
        from .data import load_splits

        return load_splits(self.config)

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

    def work(self, n: Mapping[str, int | str], cache: StageCache) -> str:
        """What the stage trains on, for `w2s-align plan` (`n`: the splits' sizes)."""
        return f"language modeling on the texts of gt {n['gt']} + w2s {n['w2s']} pairs"

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

    def work(self, n: Mapping[str, int | str], cache: StageCache) -> str:
        return f"{n['gt']} ground-truth pairs"

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

    def work(self, n: Mapping[str, int | str], cache: StageCache) -> str:
        return f"labels {n[self.split]} {self.split} pairs"

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

    def work(self, n: Mapping[str, int | str], cache: StageCache) -> str:
        return f"{len(self.members)} members' labels of {self.split} combined ({self.combine})"

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

    def work(self, n: Mapping[str, int | str], cache: StageCache) -> str:
        return f"features of {n[self.split]} {self.split} pairs"

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

    def work(self, n: Mapping[str, int | str], cache: StageCache) -> str:
        """How many pairs the student trains on: its weak labels (all, or those its filter keeps, exact once the
        labels exist), plus the helpfulness pairs of the implicit conflict."""
        spec, n_split = self, n[self.split]
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

    def work(self, n: Mapping[str, int | str], cache: StageCache) -> str:
        return f"supervised finetuning on the preferred responses of the pairs of {self.model.key}"

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
