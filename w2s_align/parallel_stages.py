"""Several stages of a run at once (`w2s-align run --jobs N`): independent stages on N worker processes.

A sweep's stages are mostly independent: the ceilings need only the data, and each student only its teacher's labels.
On a CPU, N small models trained side by side with 1/N of the cores each get through more work than one model with all
of them, because a small model's matrix products do not keep several cores busy (on 2 cores, the 6-layer MiniLM trains
1.72x faster on 2 threads than on 1, so two stages on one thread each could finish 1.16x sooner; the deception sweep of
benchmarks/RESULTS.md, (f), ran 1.06x faster). The main process keeps the output directory, hands each unfinished stage
to a free worker as soon as the stages it reads are finished, and writes the report; workers read the prepared splits
from the cache and write their stages exactly as a sequential run does, so a run can be stopped and resumed with any
`--jobs`.

Results are those of a sequential run up to the rounding of sums that split over threads differently: a model trained
on one thread can differ from the same model trained on two in the last bits of its weights, as between machines.

Example:

```python
>>> from w2s_align.parallel_stages import threads_per_job
>>> threads_per_job(jobs=2, threads=2)
1
```
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from .errors import W2SInputError
from .specs import Step

if TYPE_CHECKING:
    from .recipe import Recipe
    from .stage_runner import StageRunner

_worker: StageRunner | None = None  # the stage runner of a worker process, built once by `_start_worker`
_running = False  # whether the worker runs a stage


def threads_per_job(jobs: int, threads: int) -> int:
    """Each worker's share of the `threads` this process would use (at least one)."""
    return max(1, threads // jobs)


def run_in_workers(runner: StageRunner, steps: Sequence[Step], jobs: int) -> None:
    """Run `steps` (unfinished, in plan order) on `jobs` worker processes, each once the steps it reads are done.

    Raises the first error a worker raises, once the stages running beside it have finished.
    """
    import torch

    from .distributed import state

    if state().num_processes > 1:
        raise W2SInputError(
            "--jobs runs several stages at once in a single process; under a multi-process launch every stage "
            "already uses all processes: leave --jobs at 1"
        )
    context = get_context("spawn")  # a fresh interpreter: no copy of this process's torch threads or locks
    # The workers' log lines, passed on to the runner's log in the order they come. A bare pipe, without the locks
    # of a queue: a short message is one write, which the system does not interleave with another.
    lines, writer = context.Pipe(duplex=False)
    levels = tuple(logging.getLevelName(logging.getLogger(name).getEffectiveLevel()) for name in ("w2s_align", "trl"))
    start = (runner.recipe, threads_per_job(jobs, torch.get_num_threads()), levels, writer)
    # The stages most others wait on go first (a weak ceiling, a bootstrapping chain), so that no worker idles at the
    # end while a chain finishes; otherwise plan order.
    waiting_on = dependents(steps)
    pending, running = sorted(steps, key=lambda step: -waiting_on[id(step)]), {}
    workers: list[int] = []
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker, initargs=start)
    try:
        while pending or running:
            for step in list(pending):
                if len(running) < jobs and not must_wait(step, pending, running.values()):
                    running[pool.submit(_run_step, step.stage_name)] = step
                    pending.remove(step)
            finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            _pass_on(lines, runner.log, workers)
            for future in finished:
                running.pop(future)
                future.result()
    except BrokenProcessPool:
        raise W2SInputError(
            f"a worker process of --jobs {jobs} died (killed, or out of memory): the stages it ran are unfinished; "
            "run again to resume them, with fewer --jobs if memory is short"
        ) from None
    except KeyboardInterrupt:
        # The stages the workers run stop as a sequential run's would (and resume on the next run); a terminal's
        # Ctrl-C reached them already, a signal to this process alone did not.
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        raise
    finally:
        _pass_on(lines, runner.log, workers)
        # After a worker's error the stages running beside it finish (and are kept); nothing new starts.
        pool.shutdown(wait=True, cancel_futures=True)


def _pass_on(lines: Connection, log: Callable[[str], None], workers: list[int]) -> None:
    """Log the workers' lines; note the process ids they announce."""
    while lines.poll():
        item = lines.recv()
        if isinstance(item, int):
            workers.append(item)
        else:
            log(item)


def dependents(steps: Sequence[Step]) -> dict[int, int]:
    """For each step, how many of `steps` read its stage, directly or through others."""
    readers: dict[int, list[Step]] = {id(step): [] for step in steps}
    for step in steps:
        for source in step.upstream().values():
            if id(source) in readers:
                readers[id(source)].append(step)
    found: dict[int, set[int]] = {}

    def below(step: Step) -> set[int]:
        if id(step) not in found:
            found[id(step)] = {id(r) for r in readers[id(step)]}.union(*(below(r) for r in readers[id(step)]))
        return found[id(step)]

    return {id(step): len(below(step)) for step in steps}


def must_wait(step: Step, pending: list[Step], running: Iterable[Step]) -> bool:
    """Whether `step` must wait: a stage it reads is not finished."""
    return any(source is other for source in step.upstream().values() for other in [*pending, *running])


def _start_worker(recipe: Recipe, threads: int, levels: tuple[str, str], lines: Connection) -> None:
    """Set up a worker process: its output, its share of the threads, and a stage runner over the prepared splits whose
    log lines go back to the main process."""
    global _worker
    signal.signal(signal.SIGINT, _interrupt)
    from .verbosity import configure

    # As the main process is set up (its logger's and the libraries' levels); no progress bars: two bars redrawn on
    # one terminal say nothing.
    configure(levels[0].lower(), library_level=levels[1].lower(), progress=False)
    import torch

    from .stage_runner import StageRunner

    torch.set_num_threads(threads)
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()
    lines.send(os.getpid())  # so that an interrupted main process can stop it
    _worker = StageRunner(recipe, log=lines.send, parallel=True, owns_process=True)
    _worker.attach()


def _end_with_parent(parent: int) -> None:
    """End this worker once its main process is gone (killed, so neither a Ctrl-C nor the pool's shutdown reached
    it) instead of training on for no one: the stage stays unfinished and resumes on the next run."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _interrupt(signum, frame) -> None:
    """A worker's Ctrl-C: stop the stage it runs; an idle worker waits for the main process to close the pool (an
    interrupt there would kill it mid-exchange)."""
    if _running:
        raise KeyboardInterrupt


def _run_step(stage_name: str) -> None:
    global _running
    _running = True
    try:
        _worker.run_step(_worker.plan.step(stage_name))
    finally:
        _running = False
