"""A run's stages dispatched by Ray (`w2s-align run RECIPE --executor ray`): one machine or a cluster.

Each unfinished stage of the plan becomes a Ray task that asks for the resources it needs (one GPU per training or
scoring stage where the cluster has GPUs, else one CPU) and that Ray starts once the stages it reads are finished: the
plan's data flow is handed to Ray as the tasks' arguments, so Ray, not w2s_align, schedules the DAG, on the cores and
GPUs of one node or of every node of a cluster started under Slurm or Kubernetes (`ray start`, then `--ray-address
auto`). Two DPO stages of one rung and seed share their SFT stage, so one waits for the other. Workers read the
prepared splits from the run's cache and write their stages exactly as a sequential run does; the main process keeps
the output directory, prints each stage's lines when it ends, and writes the report. A run can be stopped and resumed
with any executor.

Without `--ray-address` the run starts a new local instance (whatever `RAY_ADDRESS` or an earlier `ray start` says;
`--ray-address auto` joins that cluster). An address that is not a Ray address, or whose port does not answer, is
refused before anything is imported; a port that answers but is no Ray cluster stops the run within about 20 s, with
one line either way.

A failed stage stops the stages that read it (Ray does not start them) with one line naming it; the stages that do
not depend on it finish and are kept, and a rerun resumes from the stage cache. The output directory and the cache
must be on a filesystem every node mounts (see docs/distributed.md).

Install the extra with `pip install "w2s_align[ray]"`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import W2SInputError, first_line
from .specs import Step

if TYPE_CHECKING:
    from .recipe import Recipe
    from .stage_runner import StageRunner


def stage_resources(step: Step, gpus: float) -> dict[str, float]:
    """What a stage asks Ray for: a GPU for a stage that trains or scores models when the cluster has GPUs, else a
    CPU (Ray then starts as many at once as there are cores)."""
    return {"num_cpus": 1, "num_gpus": 1 if step.uses_models and gpus >= 1 else 0}


# The longest wait, in seconds, for the TCP port of a cluster's address to answer (a dead address refuses at once, a
# firewalled one is silent).
CONNECT_TIMEOUT_S = 5
# Ray retries a cluster that does not answer for minutes (20 attempts of 40 s to a GCS address, 30 s to a Ray Client
# one). These bound the wait to about 15 s; Ray reads most of them when it is imported, so they are set before the
# import, for a connection to a cluster only (a local instance keeps Ray's defaults), and a user's own value wins.
_CONNECT_ENVIRONMENT = {
    "RAY_gcs_server_port_wait_time_s": "1",  # one attempt of 5 s to reach the GCS, 5 s to subscribe, and:
    "RAY_py_gcs_connect_timeout_s": "5",  # 5 s for the cluster's id
    "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "5",  # a ray:// address: three attempts of 5 s
}
# The addresses of `--ray-address` other than HOST:PORT and ray://HOST:PORT.
_NAMED_ADDRESSES = ("auto", "local")
NEEDS_RAY = '--executor ray needs Ray: pip install "w2s_align[ray]"'


def check_address(address: str) -> None:
    """`address` is `auto`, `local`, `HOST:PORT` (a head node's GCS, as `ray start --head` prints it) or
    `ray://HOST:PORT` (Ray Client), and its port answers within [`CONNECT_TIMEOUT_S`].

    Raises:
        W2SInputError: one line naming the address and what is wrong with it.
    """
    if address in _NAMED_ADDRESSES:
        return
    try:
        parts = urlsplit(address if "://" in address else f"//{address}")
        host, port = parts.hostname, parts.port
    except ValueError as error:  # a port out of range or not a number
        raise _not_an_address(address, f" ({error})") from None
    if parts.scheme not in ("", "ray") or not host or not port or parts.path or parts.query or " " in address:
        raise _not_an_address(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:  # unknown host, refused, unreachable, or silent past the timeout
        raise W2SInputError(
            f"--ray-address {address}: no Ray cluster answers there ({first_line(error)}); start one with "
            "`ray start --head`, or leave --ray-address out for a local instance"
        ) from None


def _not_an_address(address: str, reason: str = "") -> W2SInputError:
    return W2SInputError(
        f"--ray-address {address!r}: not a Ray address{reason}; give auto, HOST:PORT of the head node's GCS (as "
        "`ray start --head` prints it) or ray://HOST:PORT"
    )


@contextmanager
def _bounded_connection(address: str | None) -> Iterator[None]:
    """[`_CONNECT_ENVIRONMENT`] while Ray is imported and connects to the cluster at `address`; none for a local
    instance."""
    cluster = address not in (None, "local")
    added = {name: value for name, value in _CONNECT_ENVIRONMENT.items() if cluster and name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextmanager
def _held_back_stderr() -> Iterator[None]:
    """The process's standard error held back: written out when the block succeeds, dropped when it raises. Ray's
    core writes a warning for each failed step of a connection there (file descriptor 2, out of Python's reach):
    after a failure our one line says it all."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)  # reached when the block succeeded
        os.write(2, held.read())


def _connect(ray: Any, address: str | None) -> None:
    """A new local instance when `address` is None (not the cluster that `RAY_ADDRESS` or an earlier `ray start`
    names, Ray's own default, which may be long gone), else the cluster at `address`, within about 20 s or one line."""
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address in (None, "local"):
        # Ray announces on stderr the token authentication it gives every new instance (its default): not news.
        announcer = logging.getLogger("ray._private.authentication.authentication_token_setup")
        level = announcer.level
        announcer.setLevel(logging.ERROR)
        try:
            ray.init(address="local", **options)
        finally:
            announcer.setLevel(level)
        return
    check_address(address)
    try:
        with _held_back_stderr(), warnings.catch_warnings():  # Ray Client's advice on a timeout: our line says it
            warnings.simplefilter("ignore")
            ray.init(address=address, **options)
    except (OSError, RuntimeError, ValueError) as error:  # ConnectionError and TimeoutError are OSErrors
        raise W2SInputError(
            f"--ray-address {address}: could not connect to a Ray cluster ({first_line(error)}); start one with "
            "`ray start --head`, or leave --ray-address out for a local instance"
        ) from None


def run_on_ray(runner: StageRunner, steps: Sequence[Step], address: str | None = None) -> None:
    """Run `steps` (unfinished, in plan order) as Ray tasks; `address`: an existing cluster (`auto`, `HOST:PORT` or
    `ray://HOST:PORT`), else a new local instance over this machine's cores and GPUs.

    Raises:
        W2SInputError: Ray is not installed, the cluster does not answer, or a stage failed (after the stages that do
            not depend on it finished).
    """
    with _bounded_connection(address):
        try:
            import ray
        except ImportError:
            raise W2SInputError(NEEDS_RAY) from None
        from .distributed import state

        if state().num_processes > 1:
            raise W2SInputError("--executor ray runs each stage as a task of its own; launch it as one process")
        started = not ray.is_initialized()
        if started:
            _connect(ray, address)
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
    refs: dict[int, Any] = {}
    names: dict[Any, str] = {}
    for step in steps:  # plan order: every stage after the stages it reads
        after = [refs[id(source)] for source in step.upstream().values() if id(source) in refs]
        ref = task.options(**stage_resources(step, gpus)).remote(runner.recipe, step.stage_name, threads, *after)
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


def _run_stage(recipe: Recipe, stage_name: str, threads: int, *_finished: Any) -> list[str]:
    """A Ray task: run the plan's stage named `stage_name` over the prepared splits; return its log lines."""
    import torch

    from .stage_runner import StageRunner

    if threads:
        torch.set_num_threads(threads)
    lines: list[str] = []
    runner = StageRunner(recipe, log=lines.append, parallel=True, owns_process=True)  # its lines name their stage
    runner.attach()
    runner.run_step(runner.plan.step(stage_name))
    return lines
