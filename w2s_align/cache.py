"""Stages cached by a hash of what determines them: the one place where cache keys are made.

A stage (cut the data, train a rung, label a split) lives in `run_dir/stages/<name>-<hash>/`. The hash covers
[`CACHE_VERSION`], the stage's own settings and the hashes of the stages it reads, so a rerun with the same recipe
finds the stage finished and skips it, a changed setting gets a fresh directory, and the change reaches every stage
downstream. A stage is finished only when its `DONE.json` marker exists, and the marker is written last and
atomically: a run killed mid-stage leaves no marker, and the rerun redoes (or, for training, resumes) the stage.

The stages of a run are described by the specs of [`w2s_align.specs`]; each spec names its stage, its settings and
the specs it reads, and [`StageCache`] turns it into a [`Stage`] with the one rule above.

Example:

```python
>>> from w2s_align.cache import Stage
>>> stage = Stage("runs/demo", "train-weak", {"lr": 1e-5, "data": "abc123"})
>>> stage.done
False
```
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from .artifacts import RunDir, atomic_write_json, bounded_name
from .recipe import RungConfig

# Bump when what a stage writes changes meaning (or what determines it changes shape), so that no run trusts a cache
# made under other rules. 2: stages name their task, students only the loss settings their method reads. 3: training
# pairs stored in random order, swap-invariant losses, bootstrapping labels the split its teacher did not train on.
# 4: conflicts have a direction, students a replicate and a step budget, `entropy` is renamed `min_entropy`, the data
# may be evaluated on a validation slice; every setting is hashed as it is (no key left out when it has its default).
# 5: an implicit text prompt (the `preference` source) is cut at a word boundary, not mid-word.
# 6: the placebo changes the batch order only (was: another training seed), the imitation control is new, and the
# students of a deception comparison save their predictions on the split they learned from.
CACHE_VERSION = 6
# The report stage's own version, bumped when the metrics computed from unchanged predictions change, so that a rerun
# recomputes its report (seconds) without retraining anything. 2: a model's mean accuracy is one number in every table.
# 3: `metrics.json` names the students' rows `students` (was `pgr`, which a row also holds).
REPORT_VERSION = 3


def config_hash(value: Any, version: int | None = None) -> str:
    """Stable short hash of a JSON-serialisable value under a cache version (default [`CACHE_VERSION`]); key order
    does not matter."""
    version = CACHE_VERSION if version is None else version
    text = json.dumps({"cache_version": version, "value": value}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# Trainer settings that change how a run logs, saves, loads batches or is tracked, never what it learns: a rung's
# `trainer_kwargs` holding them hashes as without them, so changing them retrains nothing.
RESULT_NEUTRAL = frozenset(
    {
        "logging_steps", "logging_strategy", "logging_first_step", "log_level", "log_level_replica", "disable_tqdm",
        "save_steps", "save_strategy", "save_total_limit", "save_only_model", "dataloader_num_workers",
        "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor", "report_to",
        "run_name", "project", "trackio_space_id", "push_to_hub", "hub_model_id", "hub_strategy", "hub_private_repo",
        "eval_strategy", "eval_steps", "eval_delay", "eval_on_start", "per_device_eval_batch_size", "ddp_timeout",
    }
)  # fmt: skip


def rung_settings(rung: RungConfig) -> dict[str, Any]:
    """A rung as it determines the models trained from it: its config without the result-neutral trainer settings."""
    settings = dataclasses.asdict(rung)
    training = settings["training"]
    training["trainer_kwargs"] = {k: v for k, v in training["trainer_kwargs"].items() if k not in RESULT_NEUTRAL}
    for name in RESULT_NEUTRAL & set(training):  # the recipe's own result-neutral settings (`logging_steps`)
        del training[name]
    return settings


def file_digests(config: Any) -> Any:
    """Content digests of the local files a data config (`files` per split, or `path`) names; None for a hub id.

    Contents rather than modification times: copying or re-mounting the same data must not retrain every stage.
    """
    if getattr(config, "files", None):
        return {split: _path_digests(path) for split, path in config.files.items()}
    return _path_digests(config.path)


def _path_digests(path: str | None) -> Any:
    if not path or not Path(path).exists():
        return None
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return [(p.name if p == root else str(p.relative_to(root)), _file_digest(p)) for p in files]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        self.dir = RunDir(run_dir).stages / f"{bounded_name(name)}-{self.hash}"

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
        from .distributed import barrier, is_main_process  # with the first stage that runs: a plan runs none

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
        from .distributed import barrier

        atomic_write_json(self.dir / self.MARKER, {"name": self.name, "hash": self.hash, **(summary or {})})
        if sync:
            barrier()

    def summary(self) -> dict[str, Any]:
        return json.loads((self.dir / self.MARKER).read_text())


class StageSpec(Protocol):
    """What [`StageCache`] needs of a spec: its stage's name, its own settings and the specs whose output it reads."""

    @property
    def stage_name(self) -> str: ...

    def settings(self) -> dict[str, Any]: ...

    def upstream(self) -> Mapping[str, StageSpec]: ...


class StageCache:
    """The stages of one run directory: `cache.stage(spec)` is the spec's [`Stage`], its hash computed once.

    The rule: a stage's determinants are its spec's settings plus, under the name the spec gives it, the hash of
    every stage it reads.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._stages: dict[str, Stage] = {}

    def stage(self, spec: StageSpec) -> Stage:
        name = spec.stage_name
        if name not in self._stages:
            upstream = {role: self.stage(source).hash for role, source in spec.upstream().items()}
            self._stages[name] = Stage(self.run_dir, name, {**spec.settings(), **upstream})
        return self._stages[name]
