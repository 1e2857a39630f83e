"""Running one stage of a plan: train a ceiling or a student, label a split, finetune a rung as a language model,
take a rung's features, combine an ensemble, and assemble a student's training pairs (weak labels, filter, conflict).

[`StageRunner`] is what the pipeline, the worker processes of `--jobs` ([`w2s_align.parallel_stages`]) and Ray's
tasks ([`w2s_align.ray_stages`]) run stages with; it knows nothing of their order or of the report.

Example:

```python
>>> from w2s_align.recipe_yaml import load_recipe
>>> from w2s_align.stage_runner import StageRunner
>>> runner = StageRunner(load_recipe("recipes/quickstart.yaml"))
>>> [type(step).__name__ for step in runner.plan.steps][:2]
['CeilingSpec', 'CeilingSpec']
```
"""

from __future__ import annotations

import gc
import math
import shutil
import time
from collections.abc import Callable, Mapping

import numpy as np
from datasets import Dataset, DatasetDict, concatenate_datasets

from .artifacts import atomic_write_parquet
from .cache import Stage, StageCache
from .cards import w2s_section, write_model_card
from .conflicts import conflict_labels, helpfulness_pairs, mix_implicit_conflict, random_direction
from .controls import check_pairs
from .data import ground_truth_pairs, load_helpful_pairs
from .distributed import is_main_process, on_main, state
from .ensembles import ensemble_labels, ensemble_predictions
from .errors import W2SInputError
from .generative import generative_finetune, started_from
from .labeling import attach_labels, filter_labels, load_labels, save_labels
from .options import SOFT_LABEL, SPLITS
from .plan import Plan, no_optimizer_step
from .plan_builder import build_plan
from .probes import FEATURES_FILE, probe_clean, split_features
from .recipe import Recipe, RungConfig
from .specs import (
    CeilingSpec,
    DataSpec,
    EnsembleSpec,
    FeatureSpec,
    GenerativeSpec,
    HelpfulSpec,
    LabelSpec,
    SFTSpec,
    Step,
    StudentSpec,
)
from .tasks import REGISTRY, task_class
from .tracking import Trackers
from .training import PREDICTIONS_FILE, TEACHER_COLUMN, TRAIN_PREDICTIONS_FILE, TrainJob


class StageRunner:
    """Runs the stages of `recipe`'s plan, one at a time, over the run's splits ([`attach`] loads them).

    Args:
        recipe ([`Recipe`]): the run's recipe.
        log (`Callable[[str], None]`, *optional*, defaults to `print`): one line per step.
        parallel (`bool`, *optional*, defaults to `False`): stages run beside others and end out of order, so the
            line that ends one names it.
        owns_process (`bool`, *optional*, defaults to `False`): the process runs nothing else (the command line's, a
            worker's): what outlives a stage is kept out of later garbage collections (see [`release`]).
    """

    def __init__(
        self,
        recipe: Recipe,
        log: Callable[[str], None] = print,
        parallel: bool = False,
        owns_process: bool = False,
        plan: Plan | None = None,
    ):
        self.recipe = recipe
        self.log = log
        self.parallel = parallel
        self.owns_process = owns_process
        self.plan = build_plan(recipe) if plan is None else plan
        self.cache = StageCache(recipe.run_dir)
        self.trackers = Trackers.of(recipe.tracking, recipe.name, recipe.run_dir)
        self.tasks = {name: task_class(name)(recipe, self.cache, self.log) for name in self.plan.tasks}
        self.splits: DatasetDict | None = None
        self._helpful: Dataset | None = None

    def attach(self, cut: DatasetDict | None = None) -> DatasetDict:
        """Load the splits, cutting them first unless the data stage is finished (as it is for the workers of
        [`w2s_align.parallel_stages`], which read a run that another process prepared and holds); `cut`: the splits
        already cut from the recipe's data (the command line cuts them before torch is imported)."""
        build = (lambda: cut) if cut is not None else self.plan.data.load
        self.splits = DatasetDict(self._dataset_stage(self.plan.data, SPLITS, build))
        return self.splits

    def run_step(self, step: Step) -> None:
        """Run one stage of the plan (once the stages it reads are finished)."""
        step.run(self, self.cache.stage(step))  # each kind of step names the method below that runs it
        self.release()

    def release(self) -> None:
        """Free the finished stage's objects: a model's reference cycles would hold its memory until a later
        collection. In a process of its own, the survivors (the libraries the stage imported, the splits) are then
        frozen out of later collections (`gc.freeze`): a full collection walks every tracked object, about 0.3 s for
        the ~540k that torch, transformers and TRL leave, and accelerate collects whenever it frees a trainer."""
        gc.collect()
        if self.owns_process:
            gc.freeze()

    def _pairs(self, spec: CeilingSpec | StudentSpec) -> Dataset:
        """The pairs a model trains on: the ground truth, or a student's weak labels ([`_student_pairs`])."""
        return ground_truth_pairs(self.splits["gt"]) if isinstance(spec, CeilingSpec) else self._student_pairs(spec)

    def _rung(self, spec: CeilingSpec | StudentSpec, sft: bool = True) -> RungConfig:
        """The rung as a model trains it: from its language-modeling stage, then its SFT stage (`sft`), where it has
        them."""
        rung = spec.rung
        for start in (spec.start, spec.sft if sft else None):
            if start is not None:
                rung = started_from(rung, self.cache.stage(start).path("model"))
        return rung

    def sft(self, spec: SFTSpec, stage: Stage) -> None:
        """The supervised finetuning a policy starts from, on the preferred responses of its model's pairs."""
        model = spec.model
        self.log(f"supervised finetuning for {model.label}, seed {model.seed}")
        stage.begin()
        tracker = self.trackers.run(stage.name, model.seed)
        summary = self.tasks[spec.task].sft(
            stage.dir, self._rung(model, sft=False), self._pairs(model), model.seed, tracker
        )
        shutil.rmtree(stage.path("checkpoints"), ignore_errors=True)
        stage.finish(summary)

    def train(self, spec: CeilingSpec | StudentSpec, stage: Stage) -> None:
        """Train (or resume training) one model, save it and its test predictions, and finish the stage."""
        pairs = self._pairs(spec)
        self.log(f"training {spec.label}, seed {spec.seed}")
        started = time.time()
        stage.begin(keep_partial=True)
        task = self.tasks[spec.task]
        rung = self._rung(spec)
        tracker = self.trackers.run(stage.name, spec.seed)
        job = TrainJob(
            stage.dir, rung, pairs, spec.seed, spec.method, spec.conflict_alpha, self.splits["test"], tracker,
            ground_truth=isinstance(spec, CeilingSpec),
        )  # fmt: skip
        with tracker.active():
            summary = task.train(job)
        if isinstance(spec, StudentSpec) and self.plan.scores_training(spec):
            self._score_training_split(spec, stage, rung)
        if is_main_process():
            teachers = [teacher.key for teacher in spec.chain] if isinstance(spec, StudentSpec) else []
            metrics = {**summary, "num_test_pairs": self.splits["test"].num_rows}
            model = {"label": spec.label, "rung": spec.rung, "seed": spec.seed, "path": str(stage.path("model"))}
            model["auto_class"] = REGISTRY[spec.task].auto_class
            section = w2s_section(self.recipe.name, model, teachers, metrics)
            write_model_card(stage.path("checkpoints", "README.md"), stage.path("model"), section, spec.rung.model)
        shutil.rmtree(stage.path("checkpoints"), ignore_errors=True)
        summary["train_seconds"] = round(time.time() - started, 1)
        stage.finish(summary)
        named = f"{spec.label}, seed {spec.seed}: " if self.parallel else ""  # stages end out of order
        self.log(f"  {named}test accuracy {summary['accuracy']:.3f} ({summary['train_seconds']} s)")

    def _score_training_split(self, spec: StudentSpec, stage: Stage, rung: RungConfig) -> None:
        """Save the trained student's predictions on every pair its teacher labelled for it, beside that label
        ([`TRAIN_PREDICTIONS_FILE`]): how often it sides with its teacher where it learned from it."""
        labels = load_labels(self.cache.stage(spec.labels).dir)
        teacher = dict(zip(labels["id"], labels[SOFT_LABEL]))
        scored = self.tasks[spec.task].label(rung, stage.dir, spec.key, self.splits[spec.split])
        if is_main_process():
            columns = {"id": scored["id"], "prob_chosen": scored[SOFT_LABEL]}
            columns[TEACHER_COLUMN] = [teacher[pair_id] for pair_id in scored["id"]]
            atomic_write_parquet(Dataset.from_dict(columns), stage.path(TRAIN_PREDICTIONS_FILE))

    def generative(self, spec: GenerativeSpec, stage: Stage) -> None:
        """Finetune a causal-LM rung as a language model on the texts of the splits it and its students train on."""
        pairs = concatenate_datasets([self.splits["gt"], self.splits["w2s"]])
        self.log(f"language modeling of {spec.rung.name} on the texts of {pairs.num_rows} pairs, seed {spec.seed}")
        stage.begin()
        task = self.tasks[self.recipe.task]
        tracker = self.trackers.run(stage.name, spec.seed)
        rendered = task.rendered(spec.rung, pairs)
        summary = generative_finetune(spec.rung, task.tokenizer(spec.rung), rendered, spec.seed, stage.dir, tracker)
        shutil.rmtree(stage.path("checkpoints"), ignore_errors=True)
        stage.finish(summary)
        self.log(f"  language-modeling loss {summary['lm_loss_before']:.3f} -> {summary['lm_loss_after']:.3f}")

    def features(self, spec: FeatureSpec, stage: Stage) -> None:
        """The strong rung's frozen pretrained features of a split's pairs, for the probes that clean weak labels."""
        self.log(f"features of the {spec.split} split from {spec.rung.name}")
        stage.begin()
        if is_main_process():
            task = self.tasks[spec.task]
            pairs = task.rendered(spec.rung, self.splits[spec.split])
            paired = not self.plan.data.examples
            features = split_features(spec.rung, task.tokenizer(spec.rung), pairs, paired=paired)
            atomic_write_parquet(features, stage.path(FEATURES_FILE))
        stage.finish({"num_pairs": self.splits[spec.split].num_rows})

    def ensemble(self, spec: EnsembleSpec, stage: Stage) -> None:
        """Combine the members' test predictions and labels into the ensemble's (see [`w2s_align.ensembles`])."""
        self.log(f"combining {len(spec.members)} weak models into {spec.key}")
        stage.begin()
        teachers = [self.cache.stage(member.teacher) for member in spec.members]
        members = [Dataset.from_parquet(str(teacher.path(PREDICTIONS_FILE))) for teacher in teachers]
        predictions = ensemble_predictions(members, spec.combine)
        if is_main_process():
            atomic_write_parquet(predictions, stage.path(PREDICTIONS_FILE))
            labels = [load_labels(self.cache.stage(member).dir) for member in spec.members]
            labeler = "ensemble of " + ", ".join(f"{m.key}@{t.dir.name}" for m, t in zip(spec.members, teachers))
            save_labels(ensemble_labels(labels, spec.combine, labeler), stage.dir, labeler)
        accuracy = float(np.mean(predictions["correct"]))
        stage.finish({"accuracy": accuracy, "members": len(spec.members)})
        self.log(f"  test accuracy {accuracy:.3f}")

    def label(self, spec: LabelSpec, stage: Stage) -> None:
        """Label a split with a trained teacher (the split it did not train on)."""
        self.log(f"labeling the {spec.split} split with {spec.key}")
        teacher = self.cache.stage(spec.teacher)
        stage.begin()
        labeler_id = f"{spec.key}@{teacher.dir.name}"
        labels = self.tasks[spec.task].label(spec.teacher.rung, teacher.dir, labeler_id, self.splits[spec.split])
        save_labels(labels, stage.dir, labeler_id)
        stage.finish({"num_pairs": labels.num_rows})

    def _student_pairs(self, spec: StudentSpec) -> Dataset:
        """A student's training pairs: a split with its teacher's soft labels, filtered and mixed, and for the explicit
        conflict the side the conflicting objective prefers."""
        pairs = attach_labels(self.splits[spec.split], load_labels(self.cache.stage(spec.labels).dir))
        seed = spec.seed
        if spec.probe is not None:
            features = Dataset.from_parquet(str(self.cache.stage(spec.features).path(FEATURES_FILE)))
            label_filter = spec.label_filter
            paired = not self.plan.data.examples
            pairs, disagree = probe_clean(
                pairs, features, label_filter.probe, label_filter.action, spec.probe, seed, paired
            )
            done = "relabelled" if label_filter.action == "relabel" else "dropped"
            self.log(f"  {label_filter.label}: the probe disagrees with {disagree} weak labels ({done})")
        elif spec.label_filter.kind != "none":
            kept = filter_labels(pairs, spec.label_filter.kind, spec.filter_threshold, seed)
            # Known only now that the teacher has labelled: its stages are kept for the rerun.
            short = no_optimizer_step(spec.rung.training, kept.num_rows, state().num_processes)
            if short:
                raise W2SInputError(
                    f"filter_threshold {spec.filter_threshold}: the {spec.label_filter.label} filter keeps "
                    f"{kept.num_rows} of {pairs.num_rows} weak labels of {spec.teacher.key}, and {short}; lower "
                    "filter_threshold and run again (the finished stages are kept)"
                )
            # A weak teacher that is rarely confident leaves the student almost nothing to learn from: say so.
            self.log(f"  {spec.label_filter.label} filter keeps {kept.num_rows} of {pairs.num_rows} weak labels")
            pairs = kept
        if spec.pad_ratio:  # as many pairs, so as many optimizer steps, as the implicit student it is the twin of
            size = round(spec.pad_ratio * pairs.num_rows)
            extra = np.random.default_rng(seed).choice(pairs.num_rows, size, replace=size > pairs.num_rows)
            pairs = concatenate_datasets([pairs, pairs.select(extra)]).shuffle(seed=seed)
        if spec.conflict.kind == "implicit":
            helpful = self.helpful_pairs(spec.helpful)
            if spec.conflict.direction == "random":
                helpful = random_direction(helpful, seed)
            pairs = mix_implicit_conflict(pairs, helpful, spec.conflict.strength, seed=seed)
        elif spec.conflict.kind == "explicit":
            pairs = conflict_labels(pairs, spec.conflict.direction, seed)
        if spec.control == "check":
            oracle = None if spec.oracle is None else load_labels(self.cache.stage(spec.oracle).dir)
            pairs = check_pairs(spec.variant, pairs, oracle)
        return pairs

    def helpful_pairs(self, spec: HelpfulSpec) -> Dataset:
        """The implicit conflict's helpfulness pairs, oriented by helpfulness with hard labels (loaded once a run)."""
        if self._helpful is None:
            size = math.ceil(spec.ratio * self.splits["w2s"].num_rows)

            def build() -> dict[str, Dataset]:
                pairs = load_helpful_pairs(spec.config, size, self.splits)
                return {"helpful": helpfulness_pairs(pairs, seed=spec.config.seed)}

            self._helpful = self._dataset_stage(spec, ("helpful",), build)["helpful"]
        return self._helpful

    def _dataset_stage(
        self, spec: DataSpec | HelpfulSpec, names: tuple[str, ...], build: Callable[[], Mapping[str, Dataset]]
    ) -> dict[str, Dataset]:
        """The datasets of a data stage, built by the main process the first time (the others read what it wrote)."""
        stage = self.cache.stage(spec)

        def write() -> None:
            if stage.done:
                return
            datasets = build()
            stage.begin(sync=False)
            for name in names:
                atomic_write_parquet(datasets[name], stage.path(f"{name}.parquet"))
            stage.finish({name: datasets[name].num_rows for name in names}, sync=False)

        # Every process takes part, and only the main process asks whether the stage is done: a process that looked
        # itself could find the stage finished a moment ago and skip the exchange the others wait in.
        on_main(write)
        return {name: Dataset.from_parquet(str(stage.path(f"{name}.parquet"))) for name in names}
