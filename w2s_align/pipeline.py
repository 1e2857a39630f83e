"""The pipeline: execute a recipe's [`Plan`], the weak-to-strong experiment of Burns et al. and Yang et al.

For every seed: train each rung the pairs use on the ground-truth split (the ceilings), label the weak-to-strong split
with each weak ceiling (bootstrapping's intermediate students, trained on it, label the ground-truth split instead),
train each strong rung on those labels with each student method, conflict setting and label filter, and evaluate
every model on the test split. Every step is a cached
stage ([`w2s_align.cache`]): a rerun skips what is finished, and a run killed while training resumes from its last
checkpoint. The run directory then holds:

- `config.yaml`: the resolved recipe;
- `predictions/<model>.parquet`: per-example predictions of every model on the test split;
- `labels/<teacher>.seed<k>/`: the weak labels the students learned from, a Hub dataset directory with its card
  (`data/<split>-00000-of-00001.parquet` and `README.md`);
- `logs/<model>.json`: every model's training log (the trainer's log history), drawn in `plots/training/`;
- `metrics.json` and `report.md`: accuracies, PGR and deception statistics (also printed), and the plots.

Example:

```python
>>> from w2s_align.pipeline import W2SPipeline
>>> from w2s_align.recipe import load_recipe
>>> results = W2SPipeline(load_recipe("recipes/quickstart.yaml")).run()  # doctest: +SKIP
```
"""

from __future__ import annotations

import gc
import math
import shutil
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import yaml
from datasets import Dataset, DatasetDict, concatenate_datasets

from .analysis.report import cached_metrics, render_console, write_report
from .artifacts import atomic_copy, atomic_write_parquet, atomic_write_text
from .cache import Stage, StageCache
from .cards import w2s_section, write_label_dataset, write_model_card
from .conflicts import (
    check_same_format,
    conflict_labels,
    helpfulness_pairs,
    mix_implicit_conflict,
    random_direction,
)
from .data import SPLITS, ground_truth_pairs, load_helpful_pairs, load_splits
from .distributed import check_launch, check_shared, is_main_process, on_main, process_group_timeout, state
from .ensembles import ensemble_labels, ensemble_predictions
from .errors import W2SInputError
from .generative import check_generative, generative_finetune, started_from
from .hub import check_hub_access, push_run
from .labeling import attach_labels, filter_labels, load_labels, save_labels
from .models import check_rung_loads
from .parallel_stages import run_in_workers
from .plan import (
    CeilingSpec,
    DataSpec,
    EnsembleSpec,
    FeatureSpec,
    GenerativeSpec,
    HelpfulSpec,
    LabelSpec,
    Step,
    StudentSpec,
    build_plan,
)
from .probes import FEATURES_FILE, probe_clean, split_features
from .recipe import Recipe
from .run_lock import RunLock
from .tasks import PREDICTIONS_FILE, task_class
from .tracking import TrackerRun, check_trackers, log_results
from .training import TRAIN_LOG


def _silent(message: str) -> None:
    """The log of processes other than the main one."""


class W2SPipeline:
    """Runs a [`Recipe`] end to end by executing its plan. `log` receives one line per step (defaults to `print`);
    `jobs` stages run at once on worker processes where the plan allows (defaults to 1, see
    [`w2s_align.parallel_stages`]); `executor="ray"` hands the stages to Ray instead, a local instance or the cluster
    at `ray_address` (see [`w2s_align.ray_stages`])."""

    def __init__(
        self,
        recipe: Recipe,
        log: Callable[[str], None] = print,
        jobs: int = 1,
        executor: str = "local",
        ray_address: str | None = None,
    ):
        if jobs < 1:
            raise W2SInputError(f"--jobs must be at least 1, got {jobs}")
        if executor not in ("local", "ray"):
            raise W2SInputError(f"--executor must be local or ray, got {executor!r}")
        if executor == "ray" and jobs > 1:
            raise W2SInputError(
                "--jobs is for the local executor; Ray runs as many stages as the cluster has room for"
            )
        self.executor, self.ray_address = executor, ray_address
        check_launch()
        state(process_group_timeout(recipe))  # the group is made here, before any trainer: with the recipe's timeout
        self.recipe = recipe
        self.jobs = jobs
        self.log = log if is_main_process() else _silent  # one log, from the main process
        self.plan = build_plan(recipe)
        self.cache = StageCache(recipe.run_dir)
        self.tasks = {name: task_class(name)(recipe, self.cache, self.log) for name in self.plan.tasks}
        self.splits: DatasetDict | None = None
        self._helpful: Dataset | None = None
        self._lock = RunLock(recipe.run_dir)

    def prepare(self) -> DatasetDict:
        """Take the output directory (one run at a time, see [`RunLock`]); load (or reuse) the splits; if anything is
        left to train, check the recipe against every task and that every rung loads, before any training. Raises
        `W2SInputError`; the directory stays taken until `run` ends."""
        check_shared(self.recipe.run_dir, "output_dir")  # before the lock: its file must be one for every node
        on_main(self._lock.acquire)
        try:
            return self._prepare()
        except BaseException:
            self._release()
            raise

    def _prepare(self) -> DatasetDict:
        # A rerun of a finished recipe trains nothing: it needs neither the trainers nor the models. The models are
        # checked before the data stage is written, so that a model error leaves no stage behind.
        to_train = not all(self.cache.stage(step).done for step in self.plan.steps)
        if to_train:
            for task in self.tasks.values():
                task.check(self.recipe)
            check_trackers(self.recipe.tracking.report_to)
            for rung in self.plan.rungs:
                check_rung_loads(rung)
                if rung.generative.epochs > 0:
                    check_generative(rung)
        self.attach()
        processes = state().num_processes
        where = f", {processes} processes" if processes > 1 else ""
        counts = ", ".join(f"{split} {self.splits[split].num_rows}" for split in SPLITS)
        self.log(f"data: {counts} pairs ({self.recipe.data.source}{where})")
        implicit = [s for s in self.plan.steps if isinstance(s, StudentSpec) and s.conflict.kind == "implicit"]
        if to_train and implicit:  # the helpfulness pairs, loaded now: a problem with them stops the run untrained
            check_same_format(self.splits["w2s"], self._helpful_pairs(implicit[0].helpful))
        check_hub_access(self.recipe)  # a finished run still pushes what it has not pushed yet
        return self.splits

    def attach(self) -> DatasetDict:
        """Load the splits, cutting them first unless the data stage is finished (as it is for the workers of
        [`w2s_align.parallel_stages`], which read a run that another process prepared and holds)."""
        self.splits = DatasetDict(self._dataset_stage(self.plan.data, SPLITS, lambda: load_splits(self.recipe.data)))
        return self.splits

    def run(self) -> dict[str, Any]:
        """Run every stage that is not finished yet, then write metrics, predictions, plots and the report."""
        started = time.time()
        if self.splits is None:
            self.prepare()
        try:
            return self._run(started)
        finally:
            self._release()

    def _release(self) -> None:
        # On the main process alone, no collective: after a failure the other processes may never reach one.
        if is_main_process():
            self._lock.release()

    def _run(self, started: float) -> dict[str, Any]:
        atomic_write_text(self.recipe.run_dir / "config.yaml", yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
        pending = [step for step in self.plan.steps if not self.cache.stage(step).done]
        if self.executor == "ray" and pending:
            from .ray_stages import run_on_ray

            run_on_ray(self, pending, self.ray_address)
        elif self.jobs > 1 and len(pending) > 1:
            run_in_workers(self, pending, self.jobs)
        else:
            for step in pending:
                self.run_step(step)
        return self._report(started)

    def run_step(self, step: Step) -> None:
        """Run one stage of the plan (once the stages it reads are finished)."""
        stage = self.cache.stage(step)
        if isinstance(step, GenerativeSpec):
            self._generative(step, stage)
        elif isinstance(step, FeatureSpec):
            self._features(step, stage)
        elif isinstance(step, EnsembleSpec):
            self._ensemble(step, stage)
        elif isinstance(step, LabelSpec):
            self._label(step, stage)
        else:
            gt = isinstance(step, CeilingSpec)
            self._train(step, stage, ground_truth_pairs(self.splits["gt"]) if gt else self._student_pairs(step))

    def _train(self, spec: CeilingSpec | StudentSpec, stage: Stage, pairs: Dataset) -> None:
        """Train (or resume training) one model, save it and its test predictions, and finish the stage."""
        self.log(f"training {spec.label}, seed {spec.seed}")
        started = time.time()
        stage.begin(keep_partial=True)
        task = self.tasks[spec.task]
        rung = spec.rung if spec.start is None else started_from(spec.rung, self.cache.stage(spec.start).path("model"))
        tracker = TrackerRun.for_stage(self.recipe, stage.name, spec.seed)
        with tracker.active():
            gt = isinstance(spec, CeilingSpec)
            test = self.splits["test"]
            summary = task.train(
                stage.dir, rung, pairs, spec.train_seed, spec.method, spec.conflict_alpha, test, tracker, gt
            )
        if is_main_process():
            teachers = [teacher.key for teacher in spec.chain] if isinstance(spec, StudentSpec) else []
            metrics = {**summary, "num_test_pairs": self.splits["test"].num_rows}
            model = {"label": spec.label, "rung": spec.rung, "seed": spec.seed}
            section = w2s_section(self.recipe.name, model, teachers, metrics)
            write_model_card(stage.path("checkpoints", "README.md"), stage.path("model"), section, spec.rung.model)
        shutil.rmtree(stage.path("checkpoints"), ignore_errors=True)
        summary["train_seconds"] = round(time.time() - started, 1)
        stage.finish(summary)
        parallel = self.jobs > 1 or self.executor == "ray"
        named = f"{spec.label}, seed {spec.seed}: " if parallel else ""  # stages end out of order
        self.log(f"  {named}test accuracy {summary['accuracy']:.3f} ({summary['train_seconds']} s)")

    def _generative(self, spec: GenerativeSpec, stage: Stage) -> None:
        """Finetune a causal-LM rung as a language model on the texts of the splits it and its students train on."""
        pairs = concatenate_datasets([self.splits["gt"], self.splits["w2s"]])
        self.log(f"language modeling of {spec.rung.name} on the texts of {pairs.num_rows} pairs, seed {spec.seed}")
        stage.begin()
        task = self.tasks[self.recipe.task]
        tracker = TrackerRun.for_stage(self.recipe, stage.name, spec.seed)
        rendered = task.rendered(spec.rung, pairs)
        summary = generative_finetune(spec.rung, task.tokenizer(spec.rung), rendered, spec.seed, stage.dir, tracker)
        shutil.rmtree(stage.path("checkpoints"), ignore_errors=True)
        stage.finish(summary)
        self.log(f"  language-modeling loss {summary['lm_loss_before']:.3f} -> {summary['lm_loss_after']:.3f}")
        gc.collect()

    def _features(self, spec: FeatureSpec, stage: Stage) -> None:
        """The strong rung's frozen pretrained features of a split's pairs, for the probes that clean weak labels."""
        self.log(f"features of the {spec.split} split from {spec.rung.name}")
        stage.begin()
        if is_main_process():
            features = split_features(self.tasks[spec.task], spec.rung, self.splits[spec.split])
            atomic_write_parquet(features, stage.path(FEATURES_FILE))
        stage.finish({"num_pairs": self.splits[spec.split].num_rows})
        gc.collect()

    def _ensemble(self, spec: EnsembleSpec, stage: Stage) -> None:
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

    def _label(self, spec: LabelSpec, stage: Stage) -> None:
        """Label a split with a trained teacher (the split it did not train on)."""
        self.log(f"labeling the {spec.split} split with {spec.key}")
        teacher = self.cache.stage(spec.teacher)
        stage.begin()
        labeler_id = f"{spec.key}@{teacher.dir.name}"
        labels = self.tasks[spec.task].label(spec.teacher.rung, teacher.dir, labeler_id, self.splits[spec.split])
        save_labels(labels, stage.dir, labeler_id)
        stage.finish({"num_pairs": labels.num_rows})
        gc.collect()

    def _student_pairs(self, spec: StudentSpec) -> Dataset:
        """A student's training pairs: a split with its teacher's soft labels, filtered and mixed, and for the explicit
        conflict the side the conflicting objective prefers."""
        pairs = attach_labels(self.splits[spec.split], load_labels(self.cache.stage(spec.labels).dir))
        seed = spec.train_seed
        if spec.probe is not None:
            features = Dataset.from_parquet(str(self.cache.stage(spec.features).path(FEATURES_FILE)))
            pairs, disagree = probe_clean(pairs, features, spec.label_filter, spec.probe, seed)
            done = "relabelled" if spec.label_filter.endswith("relabel") else "dropped"
            self.log(f"  {spec.label_filter}: the probe disagrees with {disagree} weak labels ({done})")
        elif spec.label_filter != "none":
            kept = filter_labels(pairs, spec.label_filter, spec.filter_threshold, seed)
            if kept.num_rows == 0:
                raise W2SInputError(f"filter_threshold {spec.filter_threshold}: no weak label is that confident")
            # A weak teacher that is rarely confident leaves the student almost nothing to learn from: say so.
            self.log(f"  {spec.label_filter} filter keeps {kept.num_rows} of {pairs.num_rows} weak labels")
            pairs = kept
        if spec.pad_ratio:  # as many pairs, so as many optimizer steps, as the implicit student it is the twin of
            size = round(spec.pad_ratio * pairs.num_rows)
            extra = np.random.default_rng(seed).choice(pairs.num_rows, size, replace=size > pairs.num_rows)
            pairs = concatenate_datasets([pairs, pairs.select(extra)]).shuffle(seed=seed)
        if spec.conflict.kind == "implicit":
            helpful = self._helpful_pairs(spec.helpful)
            if spec.conflict.direction == "random":
                helpful = random_direction(helpful, seed)
            pairs = mix_implicit_conflict(pairs, helpful, spec.conflict.strength, seed=seed)
        elif spec.conflict.kind == "explicit":
            pairs = conflict_labels(pairs, spec.conflict.direction, seed)
        return pairs

    def _helpful_pairs(self, spec: HelpfulSpec) -> Dataset:
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

    def _report(self, started: float) -> dict[str, Any]:
        """Copy every model's predictions and every teacher's labels into the run directory; write the report."""
        run_dir = self.recipe.run_dir
        for spec in self.plan.models:
            stage = self.cache.stage(spec)
            atomic_copy(stage.path(PREDICTIONS_FILE), run_dir / "predictions" / f"{spec.key}.parquet")
            train_log, copied = stage.path(TRAIN_LOG), run_dir / "logs" / f"{spec.key}.json"
            # Copied only when new, so that its training curves are not drawn again on every rerun.
            if train_log.is_file() and not (copied.is_file() and copied.read_bytes() == train_log.read_bytes()):
                atomic_copy(train_log, copied)
        for spec in self.plan.labels:
            stage = self.cache.stage(spec)
            facts = {
                "teacher": spec.key,
                "labeler": f"{spec.key}@{self.cache.stage(spec.teacher).dir.name}",  # as the `labeler` column
                "recipe": self.recipe.name,
                "split": spec.split,
                "stage hash": stage.hash,
            }
            card = run_dir / "labels" / spec.key / "README.md"
            if not (card.is_file() and stage.hash in card.read_text()):  # written once per labeling stage
                write_label_dataset(load_labels(stage.dir), spec.split, card.parent, facts)
        metrics, figures = cached_metrics(self.plan, self.cache)
        metrics["wall_seconds"] = round(time.time() - started, 1)
        write_report(run_dir, metrics, figures)
        if is_main_process():
            log_results(
                self.recipe, metrics, (run_dir / "report.md").read_text(), sorted(run_dir.glob("plots/**/*.png"))
            )
            push_run(self.recipe, self.plan, self.cache, self.log)
        self.log(render_console(metrics))
        self.log(f"run directory: {run_dir}")
        return metrics
