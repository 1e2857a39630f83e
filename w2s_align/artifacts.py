"""Run artifacts written atomically: a reader (or a later run) sees the old file or the whole new one, never a part.

Only the main process writes (the others would race it for the same file). Cached stages are in [`w2s_align.cache`].

Example:

```python
>>> from w2s_align.artifacts import atomic_write_json
>>> atomic_write_json("runs/demo/metrics.json", {"accuracy": 0.7})  # doctest: +SKIP
```
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset

# File names hold at most 255 bytes on common file systems; a stage directory adds a 13-character hash to its name.
MAX_NAME_BYTES = 200


def bounded_name(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """`name` if it fits in `limit` bytes; else its head and a hash of the whole, so that a name built from long rung
    names still fits a file name (or a Hub repository id) and stays that name's alone.

    ```python
    >>> bounded_name("s.from-w.xent.seed0")
    's.from-w.xent.seed0'
    >>> long = bounded_name("s" * 300 + ".from-w.xent.seed0")
    >>> len(long), long[-17:]
    (200, '~18fcd565b7d1ec3a')
    ```
    """
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    head = name.encode()[: limit - len(digest) - 1].decode(errors="ignore")
    return f"{head}~{digest}"


@dataclass(frozen=True)
class RunDir:
    """A run directory's layout, in one place: what `w2s-align run` writes there and `analyze` reads back.

    ```python
    >>> from w2s_align.artifacts import RunDir
    >>> run = RunDir("runs/quickstart")
    >>> str(run.predictions("minilm-l1.gt.seed0")), str(run.metrics)
    ('runs/quickstart/predictions/minilm-l1.gt.seed0.parquet', 'runs/quickstart/metrics.json')
    ```
    """

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        """The recipe as the run read it (overrides applied)."""
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def stages(self) -> Path:
        """The stage cache ([`w2s_align.cache.StageCache`])."""
        return self.root / "stages"

    def predictions(self, key: str) -> Path:
        """A model's per-example test predictions."""
        return self._model_file("predictions", key, ".parquet")

    def train_predictions(self, key: str) -> Path:
        """A student's predictions on the split it learned from, beside its teacher's labels."""
        return self._model_file("predictions/train", key, ".parquet")

    def train_log(self, key: str) -> Path:
        return self._model_file("logs", key, ".json")

    def training_curve(self, key: str) -> Path:
        return self._model_file("plots/training", key, ".png")

    def labels(self, key: str) -> Path:
        """A teacher's labels as a `datasets` folder (data files and card)."""
        return self._model_file("labels", key, "")

    def _model_file(self, folder: str, key: str, suffix: str) -> Path:
        return self.root / folder / f"{bounded_name(key)}{suffix}"


def _atomic(path: Path, write) -> None:
    # Only the main process writes; the others would race it for the same file. (Imported here: asking loads
    # accelerate and torch, which a plan, that writes nothing, does without.)
    from .distributed import is_main_process

    if not is_main_process():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file an earlier write of this file left when it was killed: one run writes a directory at a time
    # (`run_lock`), so no other write is using it.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file 0600; give it the mode a plain open() would
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file so that readers see the old file or the whole new one, never a part."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    _atomic(Path(path), write)


def atomic_write_json(path: str | Path, value: Any, sort_keys: bool = True) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=sort_keys, default=str) + "\n")


def atomic_write_parquet(dataset: Dataset, path: str | Path) -> None:
    """Write a dataset as one parquet file, atomically. Made in memory first: pyarrow's file writer aborts the whole
    process on a full disk, where Python's write raises an error that a rerun recovers from."""

    def write(tmp: str) -> None:
        buffer = io.BytesIO()
        dataset.to_parquet(buffer)
        with open(tmp, "wb") as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())

    _atomic(Path(path), write)


def atomic_copy(source: str | Path, target: str | Path) -> None:
    """Copy a file so that readers of `target` never see a partial copy."""
    _atomic(Path(target), lambda tmp: shutil.copyfile(source, tmp))


def atomic_directory(target: Path, build: Callable[[Path], None], what: str) -> Path:
    """The directory `target`, built by `build` (called with a temporary sibling, renamed into place) unless it exists,
    so that a half-built one is never used; `what` names it where it is not shared by every node.

    Under several processes every one builds (a build may be collective), each in its own temporary directory, and
    the main process alone decides whether to build and renames its result into place: the directory must be one for
    every node, or a node that has it would skip the collective steps the others wait in."""
    from .distributed import barrier, broadcast, check_shared, is_main_process

    check_shared(target.parent, what)
    if broadcast(target.is_dir()):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        if is_main_process():
            try:
                os.replace(tmp, target)
            except OSError:  # another run finished the same build first
                if not target.is_dir():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    barrier()
    return target
