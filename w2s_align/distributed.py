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

from collections.abc import Callable
from typing import Any, TypeVar

from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather_object

from .device import accelerator_available
from .errors import W2SInputError

T = TypeVar("T")


def state() -> PartialState:
    """The process group of this run; on a machine without accelerators, processes talk over gloo on the CPU."""
    return PartialState(cpu=not accelerator_available())


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
