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
  (`data/<split>-<stage hash>-00000-of-00001.parquet` and `README.md`);
- `logs/<model>.json`: every model's training log (the trainer's log history), drawn in `plots/training/`;
- `metrics.json` and `report.md`: accuracies, PGR and deception statistics (also printed), and the plots.

Example:

```python
>>> from w2s_align.pipeline import W2SPipeline
>>> from w2s_align.recipe_yaml import load_recipe
>>> results = W2SPipeline(load_recipe("recipes/quickstart.yaml")).run()  # doctest: +SKIP
```
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import yaml
from datasets import DatasetDict

from .analysis.render import render_console
from .analysis.report import cached_metrics, write_report
from .artifacts import RunDir, atomic_copy, atomic_write_text
from .cards import write_label_dataset
from .distributed import check_launch, check_shared, is_main_process, on_main, process_group_timeout, state
from .executors import Sequential, executor_for
from .hub import push_run
from .labeling import load_labels
from .plan import Plan
from .preflight import with_models
from .recipe import Recipe
from .run_lock import RunLock
from .stage_runner import StageRunner
from .training import PREDICTIONS_FILE, TRAIN_LOG, TRAIN_PREDICTIONS_FILE


def _silent(message: str) -> None:
    """The log of processes other than the main one."""


class W2SPipeline:
    """Runs a [`Recipe`] end to end by executing its plan. `log` receives one line per step (defaults to `print`);
    `jobs` stages run at once on worker processes where the plan allows (defaults to 1, see
    [`w2s_align.parallel_stages`]); `executor="ray"` hands the stages to Ray instead, a local instance or the cluster
    at `ray_address` (see [`w2s_align.ray_stages`]; the executors: [`w2s_align.executors`]); `owns_process=True` (the
    command line) keeps what outlives a stage out of later garbage collections ([`StageRunner.release`]); `plan`: the
    recipe's plan where it is built already (the command line's pre-flight, [`w2s_align.preflight`])."""

    def __init__(
        self,
        recipe: Recipe,
        log: Callable[[str], None] = print,
        jobs: int = 1,
        executor: str = "local",
        ray_address: str | None = None,
        owns_process: bool = False,
        plan: Plan | None = None,
    ):
        self.executor = executor_for(executor, jobs, ray_address)
        check_launch()
        # The group is made here, before any trainer, with the recipe's timeout.
        state(process_group_timeout(rung.training.trainer_kwargs for rung in recipe.ladder))
        self.recipe = recipe
        self.log = log if is_main_process() else _silent  # one log, from the main process
        parallel = not isinstance(self.executor, Sequential)
        self.stages = StageRunner(recipe, self.log, parallel=parallel, owns_process=owns_process, plan=plan)
        self.plan, self.cache, self.tasks = self.stages.plan, self.stages.cache, self.stages.tasks
        self._lock = RunLock(recipe.run_dir)

    def prepare(self, cut: DatasetDict | None = None) -> DatasetDict:
        """Take the output directory (one run at a time, see [`RunLock`]); load (or reuse) the splits, or write `cut`
        as them (the recipe's data, already cut by [`w2s_align.data.load_splits`]); pass the checks that need the
        models ([`w2s_align.preflight.with_models`]) before any training. Raises `W2SInputError`; the directory stays
        taken until `run` ends."""
        check_shared(self.recipe.run_dir, "output_dir")  # before the lock: its file must be one for every node
        on_main(self._lock.acquire)
        try:
            return self._prepare(cut)
        except BaseException:
            self._release()
            raise

    def _prepare(self, cut: DatasetDict | None) -> DatasetDict:
        return with_models(self.stages, cut, self.log)

    def run(self) -> dict[str, Any]:
        """Run every stage that is not finished yet, then write metrics, predictions, plots and the report."""
        started = time.time()
        if self.stages.splits is None:
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
        atomic_write_text(RunDir(self.recipe.run_dir).config, yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
        pending = [step for step in self.plan.steps if not self.cache.stage(step).done]
        self.executor.run(self.stages, pending)
        return self._report(started)

    def _report(self, started: float) -> dict[str, Any]:
        """Copy every model's predictions and every teacher's labels into the run directory; write the report."""
        run_dir = self.recipe.run_dir
        run = RunDir(run_dir)
        for spec in self.plan.models:
            stage = self.cache.stage(spec)
            atomic_copy(stage.path(PREDICTIONS_FILE), run.predictions(spec.key))
            trained_on = stage.path(TRAIN_PREDICTIONS_FILE)
            if trained_on.is_file():
                atomic_copy(trained_on, run.train_predictions(spec.key))
            train_log, copied = stage.path(TRAIN_LOG), run.train_log(spec.key)
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
            card = run.labels(spec.key) / "README.md"
            if not (card.is_file() and stage.hash in card.read_text()):  # written once per labeling stage
                write_label_dataset(load_labels(stage.dir), spec.split, card.parent, facts, stage.hash)
        metrics, figures = cached_metrics(self.plan, self.cache)
        metrics["wall_seconds"] = round(time.time() - started, 1)
        write_report(run_dir, metrics, figures)
        if is_main_process():
            report, figures = run.report.read_text(), sorted(run.plots.glob("**/*.png"))
            results = self.cache.stage(self.plan.report).hash
            self.stages.trackers.log_results(metrics, report, figures, results, self.recipe.seeds)
            push_run(self.recipe.hub, self.recipe.name, self.plan, self.cache, self.log)
        self.log(render_console(metrics))
        self.log(f"run directory: {run_dir}")
        return metrics
