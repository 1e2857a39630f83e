"""How a run's unfinished stages are executed: one protocol, an executor per choice of `w2s-align run`.

| executor | runs the stages | chosen by |
| --- | --- | --- |
| [`Sequential`] | one after the other, in this process | `--executor local --jobs 1` (the default) |
| [`Workers`] | on worker processes, each stage once those it reads are done (`parallel_stages`) | `--jobs N` |
| [`RayTasks`] | as Ray tasks, on a local instance or a cluster (`ray_stages`) | `--executor ray` |

Every executor writes each stage as a sequential run does, so a run stopped under one resumes under another. Adding an
executor: a class with `run(runner, steps)` and an [`ExecutorChoice`] in [`EXECUTORS`] (how its options are checked
before torch and how it is built); the command line offers its name and help from there.

Example:

```python
>>> from w2s_align.executors import executor_for
>>> type(executor_for("local", jobs=1)).__name__, type(executor_for("local", jobs=2)).__name__
('Sequential', 'Workers')
>>> executor_for("ray", jobs=2)
Traceback (most recent call last):
w2s_align.errors.W2SInputError: --jobs is for the local executor; Ray runs as many stages as the cluster has room for
```
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .errors import W2SInputError

if TYPE_CHECKING:
    from .specs import Step
    from .stage_runner import StageRunner


class StageExecutor(Protocol):
    """Runs `steps` (unfinished, in plan order) with `runner`, each once the steps it reads are finished; raises the
    first error a stage raises (a `W2SInputError` for what the user can mend)."""

    def run(self, runner: StageRunner, steps: Sequence[Step]) -> None: ...


@dataclass(frozen=True)
class Sequential:
    """The stages one after the other, in this process."""

    def run(self, runner: StageRunner, steps: Sequence[Step]) -> None:
        for step in steps:
            runner.run_step(step)


@dataclass(frozen=True)
class Workers:
    """The stages on `jobs` worker processes of this machine, each with its share of the CPU threads."""

    jobs: int

    def run(self, runner: StageRunner, steps: Sequence[Step]) -> None:
        if len(steps) < 2:  # nothing to run side by side: no worker to start
            Sequential().run(runner, steps)
            return
        from .parallel_stages import run_in_workers

        run_in_workers(runner, steps, self.jobs)


@dataclass(frozen=True)
class RayTasks:
    """The stages as Ray tasks: a new local instance, or the cluster at `address`."""

    address: str | None = None

    def run(self, runner: StageRunner, steps: Sequence[Step]) -> None:
        if not steps:
            return
        from .ray_stages import run_on_ray

        run_on_ray(runner, steps, self.address)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity, which a container or `taskset` narrows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _check_local(jobs: int, address: str | None) -> None:
    if address is not None:
        raise W2SInputError("--ray-address is for --executor ray; the local executor runs on this machine")


def _local(jobs: int, address: str | None) -> StageExecutor:
    _check_local(jobs, address)
    return Workers(jobs) if jobs > 1 else Sequential()


def _check_ray_jobs(jobs: int) -> None:
    if jobs > 1:
        raise W2SInputError("--jobs is for the local executor; Ray runs as many stages as the cluster has room for")


def _check_ray(jobs: int, address: str | None) -> None:
    _check_ray_jobs(jobs)
    from .ray_stages import NEEDS_RAY, check_address

    if importlib.util.find_spec("ray") is None:
        raise W2SInputError(NEEDS_RAY)
    if address is not None:
        check_address(address)


def _ray(jobs: int, address: str | None) -> StageExecutor:
    _check_ray_jobs(jobs)
    return RayTasks(address)


@dataclass(frozen=True)
class ExecutorChoice:
    """One choice of `w2s-align run --executor`.

    Args:
        help (`str`): what it runs the stages on, for the command line's help.
        check (`Callable[[int, str | None], None]`): checks `--jobs` and `--ray-address` for it before anything is
            imported or written (may contact a cluster); raises `W2SInputError` naming the option.
        build (`Callable[[int, str | None], StageExecutor]`): the executor for `--jobs` and `--ray-address`, checked
            as far as it can be without contacting anything.
    """

    help: str
    check: Callable[[int, str | None], None]
    build: Callable[[int, str | None], StageExecutor]


EXECUTORS: dict[str, ExecutorChoice] = {
    "local": ExecutorChoice("this process (and its --jobs workers)", _check_local, _local),
    "ray": ExecutorChoice(
        "every stage a Ray task with the GPU or CPU it needs, on this machine or a cluster (pip install "
        "w2s_align[ray]; docs/distributed.md)",
        _check_ray,
        _ray,
    ),
}


def _check_choice(executor: str, jobs: int) -> ExecutorChoice:
    if executor not in EXECUTORS:
        raise W2SInputError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if jobs < 1:
        raise W2SInputError(f"--jobs must be at least 1, got {jobs}")
    return EXECUTORS[executor]


def check_executor(executor: str, jobs: int, address: str | None) -> None:
    """The executor options of `w2s-align run`, checked before anything is imported or written: an executor of
    [`EXECUTORS`]; `--jobs` between 1 and this machine's cores (each worker a process of its own, with its copy of
    torch and the models), and 1 with Ray; `--ray-address` with Ray alone, a Ray address whose port answers; Ray
    installed.

    ```python
    >>> check_executor("local", 1, "auto")
    Traceback (most recent call last):
    w2s_align.errors.W2SInputError: --ray-address is for --executor ray; the local executor runs on this machine
    ```

    Raises:
        W2SInputError: naming the option at fault.
    """
    choice = _check_choice(executor, jobs)
    cores = available_cores()
    if jobs > cores:
        raise W2SInputError(f"--jobs must be at most {cores} (the CPU cores this process may use), got {jobs}")
    choice.check(jobs, address)


def executor_for(executor: str, jobs: int = 1, address: str | None = None) -> StageExecutor:
    """The executor of `w2s-align run --executor EXECUTOR --jobs JOBS [--ray-address ADDRESS]`, its options checked
    as far as they can be without contacting a cluster ([`check_executor`] checks the rest before torch)."""
    return _check_choice(executor, jobs).build(jobs, address)
