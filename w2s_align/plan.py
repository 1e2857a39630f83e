"""The plan of a run ([`Plan`]): every stage a recipe implies, in the order they run, and what the report and the
deception comparisons ask of it (a conflicted student's twin, its controls and checks, a ceiling). The stages are
specs ([`w2s_align.specs`]); [`w2s_align.plan_builder.build_plan`] expands a recipe into its plan. The pipeline
executes `plan.steps` in order, the report reads `plan.models`, and `w2s-align plan RECIPE` prints it
([`Plan.describe`]).

Example:

```python
>>> from w2s_align.plan_builder import build_plan
>>> from w2s_align.recipe_yaml import load_recipe
>>> plan = build_plan(load_recipe("recipes/quickstart.yaml"))
>>> [spec.key for spec in plan.models][:3]
['minilm-l1.gt.seed0', 'minilm-l3.gt.seed0', 'minilm-l3.from-minilm-l1.xent.seed0']
>>> plan.step(plan.steps[0].stage_name) is plan.steps[0]
True
```
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .analysis.intervals import check_bootstrap_size
from .cache import StageCache
from .controls import CHECK_PREFIX, CONTROLS, check_of
from .errors import W2SInputError
from .options import SPLITS
from .recipe import (
    Recipe,
    RungConfig,
    TrainingSettings,
    validation_size,
)
from .specs import (
    NO_CONFLICT,
    NO_FILTER,
    CeilingSpec,
    DataSpec,
    EnsembleSpec,
    GenerativeSpec,
    HelpfulSpec,
    LabelSpec,
    ModelSpec,
    ReportSpec,
    Step,
    StudentSpec,
)


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
        return twin_of(student, self.recipe.controls)

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
        wanted = checks_of(self.recipe.conflicts.checks, student)
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
        rows += [(cache.stage(step), step.work(n, cache)) for step in self.steps]
        if self.data.examples:  # the steps count what a split holds, which in a classification run are examples
            rows = [(stage, what.replace(" pairs", " examples")) for stage, what in rows]
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


def twin_of(student: StudentSpec, controls: bool) -> StudentSpec:
    """The no-conflict twin a conflicted student is measured against: with controls, an implicit student's twin trains
    on as many pairs (so as many optimizer steps)."""
    pad = student.conflict.strength if controls and student.conflict.kind == "implicit" else 0.0
    return dataclasses.replace(student, conflict=NO_CONFLICT, pad_ratio=pad, helpful=None)


def checks_of(names: Iterable[str], student: StudentSpec) -> dict[str, StudentSpec]:
    """The checks `names` (a recipe's `conflicts.checks`) derived from a conflicted student's twin, by name (a
    deceiver's `oracle` is left to the plan, which plans the strong ceiling's labels)."""
    twin = twin_of(student, controls=True)
    return {name: check_of(name)[0].derive(twin, CHECK_PREFIX + name) for name in names}


def controls_of(spec: StudentSpec) -> list[StudentSpec]:
    """The control students a student needs, and theirs: for a conflicted one its twin (trained as many steps as an
    implicit student), and unless it is itself a control, every record of [`w2s_align.controls.CONTROLS`] that
    applies to it (derived from it and its twin)."""
    twin = twin_of(spec, controls=True)
    out = [twin] if spec.conflict.kind != "none" else []
    if spec.control is None:
        derived = (control.derive(spec, twin) for control in CONTROLS.values() if control.applies(spec))
        out += [control for control in derived if control is not twin]  # the budget control is the twin itself
    return out + [nested for control in out for nested in controls_of(control)]
