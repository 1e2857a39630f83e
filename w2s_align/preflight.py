"""The checks a run passes before it trains, in two named phases, so that a mistake stops it before any work and
says so in one line (`W2SInputError`):

1. [`before_torch`] (the command line, before torch is imported: about a second): the recipe's local data files, the
   output directory, the plan (built here, once: the pipeline takes it), and the splits cut now, unless their stage
   is cached, so that a mistake in a data row stops the run at once.
2. [`with_models`] (the pipeline, once the output directory is taken and anything is left to train): every task's
   trainer config, the trackers, every rung loads and the disk holds the models left to train, the generative rungs,
   the splits' sizes against the batch settings, each rung's `max_length` against the pairs, the helpfulness pairs'
   format; and the hub access a run that pushes needs. Returns the splits.

A new check goes in the phase that can make it: before torch what needs only the recipe and the files, with the models
what needs a model, a tokenizer or the splits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .recipe import Recipe

if TYPE_CHECKING:
    from datasets import DatasetDict

    from .plan import Plan
    from .stage_runner import StageRunner


@dataclass(frozen=True)
class Preflight:
    """What the first phase hands to the run: the recipe, its plan, and its splits where they were cut (None: the
    data stage is cached, or the command does not run)."""

    recipe: Recipe
    plan: Plan
    cut: DatasetDict | None = None


def before_torch(recipe: Recipe, run: bool) -> Preflight:
    """The first phase, for `w2s-align plan` (`run=False`: the data files and the plan) and `run` (also the output
    directory and the splits)."""
    from .cache import StageCache
    from .data import check_local_files
    from .plan_builder import build_plan
    from .run_lock import check_output_dir

    check_local_files(recipe.data)
    if "implicit" in recipe.conflicts.settings:
        check_local_files(recipe.conflicts.helpful)
    plan = build_plan(recipe)
    if not run:
        return Preflight(recipe, plan)
    check_output_dir(recipe.run_dir.absolute())
    # Every process cuts the splits (the same), so that every process stops on a mistake in them before the
    # collective step that writes the stage (the main process alone writes it).
    cached = StageCache(recipe.run_dir).stage(plan.data).done
    return Preflight(recipe, plan, None if cached else plan.data.load())


def with_models(runner: StageRunner, cut: DatasetDict | None, log: Callable[[str], None]) -> DatasetDict:
    """The second phase, on the run's stage runner; `cut`: the splits the first phase cut, checked here before their
    stage is written (a mistake leaves none). A rerun of a finished recipe trains nothing, so it needs neither the
    trainers nor the models: only the hub access is checked then."""
    from .conflicts import check_same_format
    from .distributed import state
    from .generative import check_generative
    from .hub import check_hub_access
    from .models import check_rung_loads
    from .options import SPLITS
    from .run_lock import check_free_space
    from .specs import CeilingSpec, StudentSpec
    from .tasks import REGISTRY
    from .tracking import check_trackers

    recipe, plan, cache = runner.recipe, runner.plan, runner.cache
    to_train = not all(cache.stage(step).done for step in plan.steps)
    models = [step for step in plan.steps if isinstance(step, CeilingSpec | StudentSpec)]
    rungs = {(model.rung.name, model.task): model.rung for model in models}  # every rung a model trains from
    if to_train:
        for task in runner.tasks.values():
            task.check(recipe)
        check_trackers(recipe.tracking.report_to)
        saved = {key: check_rung_loads(rung, REGISTRY[key[1]].auto_class) for key, rung in rungs.items()}
        pending = [model for model in models if not cache.stage(model).done]
        needed = sum(saved[model.rung.name, model.task] for model in pending)
        check_free_space(recipe.run_dir, needed, f"the {len(pending)} models left to train")
        for rung in plan.rungs:
            if rung.generative.epochs > 0:
                check_generative(rung)
    splits = cut if cut is not None else runner.attach()
    processes = state().num_processes
    if to_train:
        plan.check_sizes({split: splits[split].num_rows for split in SPLITS}, processes)
        for (_, task), rung in rungs.items():
            runner.tasks[task].check_length(rung, splits["gt"])
    if cut is not None:
        splits = runner.attach(cut)
    where = f", {processes} processes" if processes > 1 else ""
    counts = ", ".join(f"{split} {splits[split].num_rows}" for split in SPLITS)
    log(f"data: {counts} {plan.data.unit} ({recipe.data.source}{where})")
    implicit = [s for s in plan.steps if isinstance(s, StudentSpec) and s.conflict.kind == "implicit"]
    if to_train and implicit:  # the helpfulness pairs, loaded now: a problem with them stops the run untrained
        check_same_format(splits["w2s"], runner.helpful_pairs(implicit[0].helpful))
    check_hub_access(recipe.hub)  # a finished run still pushes what it has not pushed yet
    return splits
