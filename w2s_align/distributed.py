"""Running the pipeline on several processes (`accelerate launch`, `torchrun`, DeepSpeed, multi-node).

Every process trains every stage together (the trainers' data parallelism); scoring (weak labeling and evaluation) is
sharded across processes and gathered back in the original order; only the main process writes files; and work that
only the main process does (loading data, writing a stage) reports its failure to every process, so that no process
waits forever for one that has died: they all stop with the same message.

Example:

```python
>>> from w2s_align.distributed import sharded_map
>>> sharded_map(lambda items: [x * x for x in items], [1, 2, 3])  # one process: a plain map
[1, 4, 9]
```
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather_object

from .device import accelerator_available
from .errors import W2SInputError

T = TypeVar("T")

# transformers' default `ddp_timeout`: how long a collective operation waits for a process that does not come.
DEFAULT_TIMEOUT = 1800


def state(timeout: float | None = None) -> PartialState:
    """The process group of this run; on a machine without accelerators, processes talk over gloo on the CPU.

    The first call creates the group (every later one returns it): `timeout` (seconds, default [`DEFAULT_TIMEOUT`])
    is how long its collective operations wait for a process that does not come. The trainers' `ddp_timeout` would
    come too late, since the group exists before the first trainer: the pipeline passes it here first."""
    kwargs = {"timeout": timedelta(seconds=timeout or DEFAULT_TIMEOUT)} if "WORLD_SIZE" in os.environ else {}
    return PartialState(cpu=not accelerator_available(), **kwargs)


def is_main_process() -> bool:
    return state().is_main_process


def barrier() -> None:
    state().wait_for_everyone()


def sharded_map(fn: Callable[[list], list[T]], items: list) -> list[T]:
    """`fn(items)` computed in shards across processes (`fn` maps a list to a list of the same length), gathered in
    the original order on every process."""
    current = state()
    if current.num_processes == 1:
        return fn(items)
    indices = list(range(current.process_index, len(items), current.num_processes))
    local = fn([items[i] for i in indices]) if indices else []
    gathered = gather_object(list(zip(indices, local)))
    out: list[Any] = [None] * len(items)
    for index, value in gathered:
        out[index] = value
    return out


def process_group_timeout(trainer_kwargs: Iterable[Mapping[str, Any]]) -> float:
    """The largest `ddp_timeout` of the rungs' `training.trainer_kwargs`, else transformers' default: one process
    group serves every stage.

    ```python
    >>> process_group_timeout([{"ddp_timeout": 600}, {}, {"ddp_timeout": 3600}])
    3600
    >>> process_group_timeout([{}]) == DEFAULT_TIMEOUT
    True
    ```
    """
    timeouts = [kwargs["ddp_timeout"] for kwargs in trainer_kwargs if kwargs.get("ddp_timeout") is not None]
    return max(timeouts, default=DEFAULT_TIMEOUT)


def check_launch() -> None:
    """Stop on a launch that cannot run as configured: FSDP on a machine without accelerators, where accelerate does
    not enable it (the processes would train as plain data parallelism, or fail copying meta tensors)."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true") and not accelerator_available():
        raise W2SInputError(
            "FSDP needs GPUs: accelerate enables it only on accelerator setups. On CPU, launch with "
            "accelerate_configs/cpu_multi_process.yaml (data parallelism) or DeepSpeed with DS_ACCELERATOR=cpu"
        )


def broadcast(value: T) -> T:
    """The main process's `value` on every process."""
    if state().num_processes == 1:
        return value
    holder = [value]
    broadcast_object_list(holder, from_process=0)
    return holder[0]


@contextlib.contextmanager
def whole_weights() -> Iterator[None]:
    """Models loaded inside hold all their weights on every process, also under a DeepSpeed ZeRO-3 launch (where
    transformers partitions every model it loads while a ZeRO-3 config is alive: right for training, wrong for a
    model that scores alone on each process)."""
    from transformers.integrations import deepspeed

    # transformers has no public getter for the active config, only set/unset: keep its weak reference to restore it.
    saved = deepspeed._hf_deepspeed_config_weak_ref
    deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        deepspeed._hf_deepspeed_config_weak_ref = saved


def check_shared(directory: Path, what: str) -> None:
    """Stop every process with one message unless `directory` is the same directory on every process: a run of
    several nodes needs its output and cache directories on a filesystem every node mounts (rank 0 writes each stage
    and every rank reads it)."""
    current = state()
    if current.num_processes == 1:
        return
    token = broadcast(uuid.uuid4().hex)
    probe = directory / f".w2s-shared-{token}"
    if current.is_main_process:
        directory.mkdir(parents=True, exist_ok=True)
        probe.touch()
    current.wait_for_everyone()
    seen = gather_object([probe.exists()])
    current.wait_for_everyone()
    if current.is_main_process:
        probe.unlink(missing_ok=True)
    missing = [rank for rank, visible in enumerate(seen) if not visible]
    if missing:
        raise W2SInputError(
            f"{what} {directory} is not shared: process {missing[0]} does not see what process 0 writes there; put it "
            "on a filesystem every node mounts"
        )


def keep_used_conversions(model: Any) -> None:
    """Forget the weight conversions of `model`'s class that its loading did not use. transformers (5.25) loading
    under DeepSpeed ZeRO-3 records all of them, where its other path records the used ones, and saving reverts what is
    recorded: BERT's legacy renaming then saved a MiniLM's `LayerNorm.weight`/`bias` as `gamma`/`beta`."""
    model = model.get_base_model() if hasattr(model, "get_base_model") else model
    conversions = getattr(model, "_weight_conversions", None)
    if conversions:
        model._weight_conversions = [conversion for conversion in conversions if conversion.was_used()]


def lost_peer(error: BaseException) -> str | None:
    """What to say, in one line, when a collective failed because another process of the launch died or stopped
    answering (gloo's timeout or closed connection, torch's distributed errors under NCCL), else None."""
    import torch.distributed as dist

    text = str(error).strip()
    gloo = isinstance(error, RuntimeError) and "gloo/transport" in text
    if not (gloo or isinstance(error, dist.DistError)):
        return None
    detail = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[-1] if text else type(error).__name__)  # gloo's source
    return f"another process of the launch died or stopped answering ({detail})"


def on_main(fn: Callable[[], T]) -> T | None:
    """Run `fn` on the main process only (others get None), then share whether it failed: every process raises if so.

    A user mistake (`W2SInputError`) is raised again on every process with its own message; any other failure is
    raised as a `RuntimeError` naming the main process's error.
    """
    current = state()
    if current.num_processes == 1:
        return fn()
    outcome: list[Any] = [None]
    result = None
    if current.is_main_process:
        try:
            result = fn()
            outcome = [("ok", None)]
        except W2SInputError as error:
            outcome = [("input", str(error))]
        except Exception as error:  # noqa: BLE001 - every process must learn about any failure
            outcome = [("error", f"{type(error).__name__}: {error}")]
    broadcast_object_list(outcome, from_process=0)
    kind, value = outcome[0]
    if kind == "input":
        raise W2SInputError(value)
    if kind == "error":
        raise RuntimeError(f"the main process failed: {value}")
    return result
