"""Run artifacts: atomic writes and stages cached by a hash of what determines them.

A stage (train a rung, label a split, evaluate a model) lives in `run_dir/stages/<name>-<hash>/`. The hash covers
everything that determines the stage's output (its settings and the hashes of the stages it reads), so a rerun with
the same recipe finds the stage finished and skips it, and a changed setting gets a fresh directory. A stage is
finished only when its `DONE.json` marker exists, and the marker is written last and atomically: a run killed
mid-stage leaves no marker, and the rerun redoes (or, for training, resumes) the stage.

Example:

```python
>>> from w2s_align.artifacts import Stage
>>> stage = Stage("runs/demo", "train-weak", {"lr": 1e-5, "data": "abc123"})
>>> stage.done
False
```
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from datasets import Dataset

from .distributed import barrier, is_main_process

# Bump when a stage's outputs change meaning, so old caches are not trusted.
CACHE_VERSION = 1


def _atomic(path: Path, write) -> None:
    # Only the main process writes; the others would race it for the same file.
    if not is_main_process():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
        audit = os.environ.get("W2S_ALIGN_WRITE_LOG")
        if audit:  # a diagnostic trail of every artifact written (used by the distributed tests)
            with open(audit, "a", encoding="utf-8") as handle:
                handle.write(f"{os.environ.get('RANK', '0')}\t{path}\n")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
    """Write a dataset as one parquet file, atomically."""
    _atomic(Path(path), lambda tmp: dataset.to_parquet(tmp))


def atomic_copy(source: str | Path, target: str | Path) -> None:
    """Copy a file so that readers of `target` never see a partial copy."""
    _atomic(Path(target), lambda tmp: shutil.copyfile(source, tmp))


def config_hash(value: Any) -> str:
    """Stable short hash of a JSON-serialisable value (key order does not matter)."""
    text = json.dumps({"cache_version": CACHE_VERSION, "value": value}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Stage:
    """One cached step of a run.

    Args:
        run_dir (`str` or `Path`):
            The run directory.
        name (`str`):
            Readable stage name, e.g. `train-gpt2-gt-seed0`.
        determinants (`dict`):
            Everything that determines the stage's output: settings and upstream stage hashes.
    """

    MARKER = "DONE.json"

    def __init__(self, run_dir: str | Path, name: str, determinants: dict[str, Any]):
        self.name = name
        self.determinants = determinants
        self.hash = config_hash(determinants)
        self.dir = Path(run_dir) / "stages" / f"{name}-{self.hash}"

    @property
    def done(self) -> bool:
        return (self.dir / self.MARKER).is_file()

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def begin(self, keep_partial: bool = False, sync: bool = True) -> Path:
        """Prepare the stage directory. A partial directory from a killed run is removed unless `keep_partial`.

        Every process calls it; the main process prepares the directory and, with `sync`, the others wait for it
        (`sync=False` is for work that only the main process does).
        """
        if is_main_process():
            if self.dir.exists() and not keep_partial:
                shutil.rmtree(self.dir)
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.dir / "stage.json", {"name": self.name, "determinants": self.determinants})
        if sync:
            barrier()
        return self.dir

    def finish(self, summary: dict[str, Any] | None = None, sync: bool = True) -> None:
        """Mark the stage finished (written last, by the main process); with `sync`, every process waits for it."""
        atomic_write_json(self.dir / self.MARKER, {"name": self.name, "hash": self.hash, **(summary or {})})
        if sync:
            barrier()

    def summary(self) -> dict[str, Any]:
        return json.loads((self.dir / self.MARKER).read_text())
