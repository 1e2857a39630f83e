"""[`build_plan`]: a recipe expanded (seeds x pairs x methods x bootstrapping chains x conflicts x label filters, with
their controls and checks) into its [`~w2s_align.plan.Plan`] of specs ([`w2s_align.specs`]), each stage planned once.
"""

from __future__ import annotations

import dataclasses

from .controls import changes_training_only, check_of
from .errors import W2SInputError
from .options import LOSS_SETTINGS, ConflictSetting, FilterSetting
from .plan import Plan, checks_of, controls_of
from .recipe import (
    PairConfig,
    Recipe,
)
from .specs import (
    NO_CONFLICT,
    NO_FILTER,
    CeilingSpec,
    DataSpec,
    EnsembleSpec,
    FeatureSpec,
    GenerativeSpec,
    HelpfulSpec,
    LabelSpec,
    ModelSpec,
    SFTSpec,
    Step,
    StudentSpec,
)
from .tasks import REGISTRY, TaskInfo


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
        self.data = DataSpec(recipe.data, examples=REGISTRY[recipe.task].examples)
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
        for control in controls_of(spec):
            self.models.setdefault(control.key, self.add(self.with_sft(control)))
        if spec.conflict.kind == "none" or spec.split != "w2s":
            return
        for name, derived in checks_of(self.recipe.conflicts.checks, spec).items():
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


def _determinants(spec: Step) -> tuple:
    """What makes a stage the stage it is: its kind, its settings and the stages it reads (by name)."""
    upstream = {role: source.stage_name for role, source in spec.upstream().items()}
    return type(spec), spec.settings(), upstream
