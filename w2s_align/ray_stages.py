"""A run's stages dispatched by Ray (`w2s-align run RECIPE --executor ray`): one machine or a cluster.

Each unfinished stage of the plan becomes a Ray task that asks for the resources it needs (one GPU per training or
scoring stage where the cluster has GPUs, else one CPU) and that Ray starts once the stages it reads are finished: the
plan's data flow is handed to Ray as the tasks' arguments, so Ray, not w2s_align, schedules the DAG, on the cores and
GPUs of one node or of every node of a cluster started under Slurm or Kubernetes (`ray start`, then `--ray-address
auto`). Two DPO stages of one rung and seed share their SFT stage, so one waits for the other. Workers read the
prepared splits from the run's cache and write their stages exactly as a sequential run does; the main process keeps
the output directory, prints each stage's lines when it ends, and writes the report. A run can be stopped and resumed
with any executor.

A failed stage stops the stages that read it (Ray does not start them) with one line naming it; the stages that do
not depend on it finish and are kept, and a rerun resumes from the stage cache. The output directory and the cache
must be on a filesystem every node mounts (see docs/distributed.md).

Install the extra with `pip install "w2s_align[ray]"`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import W2SInputError
from .plan import CeilingSpec, FeatureSpec, GenerativeSpec, LabelSpec, SFTSpec, Step, StudentSpec

if TYPE_CHECKING:
    from .recipe import Recipe
    from .stage_runner import StageRunner


def stage_resources(step: Step, gpus: float) -> dict[str, float]:
    """What a stage asks Ray for: a GPU for a stage that trains or scores models when the cluster has GPUs, else a
    CPU (Ray then starts as many at once as there are cores)."""
    models = isinstance(step, (CeilingSpec, StudentSpec, LabelSpec, GenerativeSpec, SFTSpec, FeatureSpec))
    return {"num_cpus": 1, "num_gpus": 1 if models and gpus >= 1 else 0}


def run_on_ray(runner: StageRunner, steps: Sequence[Step], address: str | None = None) -> None:
    """Run `steps` (unfinished, in plan order) as Ray tasks; `address`: an existing cluster (`auto`, or
    `ray://host:port`), else a local instance over this machine's cores and GPUs.

    Raises:
        W2SInputError: Ray is not installed, or a stage failed (after the stages that do not depend on it finished).
    """
    try:
        import ray
    except ImportError:
        raise W2SInputError('--executor ray needs Ray: pip install "w2s_align[ray]"') from None
    from .distributed import state

    if state().num_processes > 1:
        raise W2SInputError("--executor ray runs each stage as a task of its own; launch it as one process")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        _dispatch(ray, runner, steps)
    finally:
        if started:
            ray.shutdown()


def _dispatch(ray, runner: StageRunner, steps: Sequence[Step]) -> None:
    gpus = ray.cluster_resources().get("GPU", 0.0)
    # A CPU task has one core (the resource it asked for): one thread, as `--jobs` gives each worker its share.
    threads = 1 if gpus < 1 else 0
    task = ray.remote(_run_stage)
    position = {id(step): index for index, step in enumerate(runner.plan.steps)}
    refs: dict[int, Any] = {}
    names: dict[Any, str] = {}
    for step in steps:  # plan order: every stage after the stages it reads
        after = [refs[id(source)] for source in step.upstream().values() if id(source) in refs]
        ref = task.options(**stage_resources(step, gpus)).remote(runner.recipe, position[id(step)], threads, *after)
        refs[id(step)], names[ref] = ref, step.stage_name
    pending, failures = list(refs.values()), []
    while pending:
        finished, pending = ray.wait(pending, num_returns=1)
        for ref in finished:
            try:
                for line in ray.get(ref):
                    runner.log(line)
            except ray.exceptions.RayError as error:  # the stage's own error, or that of a stage it reads
                failures.append((names[ref], _first_line(error)))
    if failures:
        name, reason = failures[0]  # the first to end failed first: the stages that read it end after
        raise W2SInputError(
            f"stage {name} failed: {reason}; the stages that read it did not run ({len(failures)} unfinished): run "
            "again to resume"
        )


def _first_line(error: Exception) -> str:
    """The failure's own message, in one line: the exception a Ray task error wraps."""
    cause = getattr(error, "cause", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[-1]}" if lines else type(cause).__name__


def _run_stage(recipe: Recipe, position: int, threads: int, *_finished: Any) -> list[str]:
    """A Ray task: run the plan's stage at `position` over the prepared splits; return its log lines."""
    import torch

    from .stage_runner import StageRunner

    if threads:
        torch.set_num_threads(threads)
    lines: list[str] = []
    runner = StageRunner(recipe, log=lines.append, parallel=True)  # its lines name their stage
    runner.attach()
    runner.run_step(runner.plan.steps[position])
    return lines
