"""The pipeline: walk a recipe's ladder and run the weak-to-strong experiment of Burns et al. on reward models.

For every seed: train each weak and strong rung on the ground-truth split (the ceilings), label the weak-to-strong
split with each weak ceiling, train each strong rung on those labels with each student method, and evaluate every
model on the test split. Every step is a cached [`Stage`]: a rerun skips what is finished, and a run killed while
training resumes from its last checkpoint. The run directory then holds:

- `config.yaml`: the resolved recipe;
- `predictions/<model>.parquet`: per-example predictions of every model on the test split;
- `labels/<weak>.seed<k>.parquet`: the weak labels the students learned from;
- `metrics.json` and `report.md`: accuracies and PGR (also printed).

Example:

```python
>>> from w2s_align.pipeline import W2SPipeline
>>> from w2s_align.recipe import load_recipe
>>> results = W2SPipeline(load_recipe("recipes/quickstart.yaml")).run()  # doctest: +SKIP
```
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from datasets import Dataset, DatasetDict

from .analysis.report import build_metrics, render_console, write_report
from .artifacts import Stage, atomic_copy, atomic_write_parquet, atomic_write_text
from .conflicts import ConflictSetting, helpfulness_pairs, mix_implicit_conflict
from .data import SPLITS, load_helpful_pairs, load_splits
from .distributed import is_main_process, on_main, state
from .dpo_task import DPOTask
from .errors import W2SInputError
from .labeling import load_labels, save_labels
from .models import check_rung_loads
from .recipe import PairConfig, Recipe, RungConfig
from .reward_task import RewardTask

# Set by the pipeline itself from the recipe; a `trainer_kwargs` entry may not override them.
PIPELINE_OWNED = {"output_dir", "seed", "student_loss", "max_length", "conflict_alpha"}


def _local_file_signature(path: str | None) -> Any:
    """Content digests of local data files, so an edited file invalidates the data stage.

    Contents rather than modification times: copying or re-mounting the same data must not retrain every stage.
    """
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


NO_CONFLICT = ConflictSetting()


def _silent(message: str) -> None:
    """The log of processes other than the main one."""


@dataclass(frozen=True)
class StudentSpec:
    """One strong student: its teacher chain, method, conflict setting, label filter and seed."""

    weak: str
    strong: str
    via: tuple[str, ...]
    method: str
    conflict: ConflictSetting
    label_filter: str
    seed: int

    @property
    def teacher(self) -> str:
        return self.weak + "".join(f"-via-{name}" for name in self.via)

    @property
    def key(self) -> str:
        """`<strong>.from-<teacher>.<method>[.<conflict>][.<filter>].seed<k>`: names files and stages."""
        parts = [self.strong, f"from-{self.teacher}", self.method]
        if self.conflict.kind != "none":
            parts.append(self.conflict.label)
        if self.label_filter != "none":
            parts.append(f"{self.label_filter}-filter")
        return ".".join([*parts, f"seed{self.seed}"])

    def describe(self) -> str:
        extra = "" if self.conflict.kind == "none" else f", {self.conflict.label} conflict"
        extra += "" if self.label_filter == "none" else f", {self.label_filter} filter"
        return f"{self.strong} on {self.teacher}'s labels with {self.method}{extra} (seed {self.seed})"

    def info(self) -> dict[str, Any]:
        return {
            "role": "student",
            "rung": self.strong,
            "weak": self.weak,
            "via": list(self.via),
            "method": self.method,
            "conflict": self.conflict.label,
            "label_filter": self.label_filter,
            "seed": self.seed,
        }


def conflict_settings(recipe: Recipe, method: str) -> list[ConflictSetting]:
    """The recipe's conflict settings for a student method (only `none` for methods outside `conflicts.methods`)."""
    conflicts = recipe.conflicts
    settings = []
    for kind in conflicts.settings:
        if kind != "none" and conflicts.methods is not None and method not in conflicts.methods:
            continue
        strengths = {"none": [0.0], "explicit": conflicts.alphas, "implicit": conflicts.ratios}[kind]
        settings += [ConflictSetting(kind, strength) for strength in strengths]
    return settings


def student_specs(recipe: Recipe, pair: PairConfig, method: str, seed: int) -> list[StudentSpec]:
    """Every student of one pair and method: conflict settings x label filters."""
    return [
        StudentSpec(pair.weak, pair.strong, tuple(pair.via), method, conflict, label_filter, seed)
        for conflict in conflict_settings(recipe, method)
        for label_filter in (pair.label_filters if pair.label_filters is not None else recipe.label_filters)
    ]


class W2SPipeline:
    """Runs a [`Recipe`] end to end. `log` receives one line per step (defaults to `print`)."""

    def __init__(self, recipe: Recipe, log: Callable[[str], None] = print):
        self.recipe = recipe
        self.run_dir = recipe.run_dir
        self.log = log if is_main_process() else _silent  # one log, from the main process
        self.task = DPOTask(recipe, self.log) if recipe.task == "dpo" else RewardTask(recipe, self.log)
        # With `task: dpo` and `dpo.supervisor: reward`, the weak labels come from a reward model.
        self.reward_task = self.task if recipe.task == "reward" else RewardTask(recipe, self.log)
        self.splits: DatasetDict | None = None
        self.data_hash: str | None = None
        self._helpful: tuple[Dataset, str] | None = None

    # ------------------------------------------------------------------ checks and data
    def prepare(self) -> DatasetDict:
        """Load (or reuse) the splits and check every rung, before any training. Raises `W2SInputError`."""
        fields = {f.name for f in dataclasses.fields(self.task.config_class)}
        for rung in self.recipe.ladder:
            for key in rung.training.trainer_kwargs:
                if key not in fields or key in PIPELINE_OWNED:
                    reason = (
                        "is set by the pipeline"
                        if key in PIPELINE_OWNED
                        else f"is not a {self.task.config_class.__name__} field"
                    )
                    raise W2SInputError(f"ladder rung {rung.name!r}: training.trainer_kwargs.{key} {reason}")
        data = self.recipe.data
        files = (
            {split: _local_file_signature(path) for split, path in data.files.items()}
            if data.files
            else _local_file_signature(data.path)
        )
        determinants = {"data": dataclasses.asdict(data), "files": files}
        stage = Stage(self.run_dir, "data", determinants)
        if not stage.done:

            def build() -> None:  # on the main process only; the others read what it wrote
                splits = load_splits(data)
                stage.begin(sync=False)
                for split in SPLITS:
                    atomic_write_parquet(splits[split], stage.path(f"{split}.parquet"))
                stage.finish({split: splits[split].num_rows for split in SPLITS}, sync=False)

            on_main(build)
        splits = DatasetDict({s: Dataset.from_parquet(str(stage.path(f"{s}.parquet"))) for s in SPLITS})
        processes = state().num_processes
        where = f", {processes} processes" if processes > 1 else ""
        self.log(f"data: {', '.join(f'{s} {splits[s].num_rows}' for s in SPLITS)} pairs ({data.source}{where})")
        for rung in self._rungs_in_use():
            check_rung_loads(rung)
        self.splits, self.data_hash = splits, stage.hash
        return splits

    def _rungs_in_use(self) -> list[RungConfig]:
        names = {name for pair in self.recipe.pairs for name in (pair.weak, pair.strong, *pair.via)}
        return [rung for rung in self.recipe.ladder if rung.name in names]

    def _task_determinants(self, task) -> dict[str, Any]:
        """What the task adds to a training stage's hash (nothing for reward models, whose stages predate tasks)."""
        return {"dpo": dataclasses.asdict(self.recipe.dpo)} if task.name == "dpo" else {}

    # ------------------------------------------------------------------ stages
    def _train_stage(
        self, stage: Stage, task, rung: RungConfig, pairs: Dataset, seed: int, method: str, conflict_alpha: float = 0.0
    ) -> dict[str, Any]:
        """Train (or resume training) one model, save it and its test predictions, and finish the stage."""
        started = time.time()
        stage.begin(keep_partial=True)
        summary = task.train(stage.dir, rung, pairs, seed, method, conflict_alpha, self.splits["test"])
        shutil.rmtree(stage.path("checkpoints"), ignore_errors=True)
        summary["train_seconds"] = round(time.time() - started, 1)
        stage.finish(summary)
        return summary

    def _ceiling(self, rung: RungConfig, seed: int, task=None) -> Stage:
        """The rung trained on the ground-truth split."""
        task = task or self.task
        suffix = "-rm" if task is not self.task else ""
        determinants = {
            "data": self.data_hash,
            "rung": dataclasses.asdict(rung),
            "seed": seed,
            "labels": "ground-truth",
        }
        stage = Stage(
            self.run_dir, f"train-{rung.name}{suffix}-gt-seed{seed}", {**determinants, **self._task_determinants(task)}
        )
        if not stage.done:
            kind = "a reward model " if suffix else ""
            self.log(f"training {kind}{rung.name} on ground truth (seed {seed})")
            summary = self._train_stage(stage, task, rung, self.splits["gt"], seed, "xent")
            self.log(f"  {rung.name}: test accuracy {summary['accuracy']:.3f} ({summary['train_seconds']} s)")
        return stage

    def _labels(self, task, teacher: RungConfig, teacher_stage: Stage, teacher_key: str) -> Stage:
        """Label the w2s split with a trained model (a weak ceiling, or an intermediate student when bootstrapping)."""
        stage = Stage(self.run_dir, f"labels-{teacher_key}", {"model": teacher_stage.hash, "data": self.data_hash})
        if not stage.done:
            self.log(f"labeling the w2s split with {teacher_key}")
            stage.begin()
            labeler_id = f"{teacher_key}@{teacher_stage.dir.name}"
            labels = task.label(teacher, teacher_stage.dir, labeler_id, self.splits["w2s"])
            save_labels(labels, stage.dir, labeler_id)
            stage.finish({"num_pairs": labels.num_rows})
            gc.collect()
        return stage

    def _helpful_pairs(self) -> tuple[Dataset, str]:
        """Helpfulness pairs for the implicit conflict and their stage hash (a cached stage, loaded once per run),
        oriented by helpfulness with hard labels: enough for the largest ratio in `conflicts.ratios`."""
        if self._helpful is not None:
            return self._helpful
        config = self.recipe.conflicts.helpful
        size = math.ceil(max(self.recipe.conflicts.ratios) * self.splits["w2s"].num_rows)
        determinants = {"helpful": dataclasses.asdict(config), "size": size, "data": self.data_hash}
        determinants["files"] = _local_file_signature(config.path)
        stage = Stage(self.run_dir, "helpful", determinants)
        if not stage.done:

            def build() -> None:  # on the main process only; the others read what it wrote
                pairs = helpfulness_pairs(load_helpful_pairs(config, size, self.splits))
                stage.begin(sync=False)
                atomic_write_parquet(pairs, stage.path("helpful.parquet"))
                stage.finish({"num_pairs": pairs.num_rows}, sync=False)

            on_main(build)
        self._helpful = Dataset.from_parquet(str(stage.path("helpful.parquet"))), stage.hash
        return self._helpful

    def _student_data(self, spec: StudentSpec, labels_stage: Stage) -> Dataset:
        """The student's training pairs: the w2s split with the teacher's soft labels, filtered and mixed."""
        labels = load_labels(labels_stage.dir)
        train = self.splits["w2s"]
        if list(labels["id"]) != list(train["id"]):
            raise RuntimeError(f"labels in {labels_stage.dir} do not match the w2s split")
        train = train.add_column("soft_label", labels["soft_label"])
        if spec.label_filter != "none":
            threshold = self.recipe.filter_threshold
            oracle = spec.label_filter == "oracle"  # also drops labels that are wrong (uses ground truth)
            train = train.filter(
                lambda row: (
                    max(row["soft_label"], 1 - row["soft_label"]) >= threshold
                    and (not oracle or row["soft_label"] > 0.5)
                ),
                desc=f"Filtering weak labels ({spec.label_filter})",
            )
            if train.num_rows == 0:
                raise W2SInputError(f"filter_threshold {threshold}: no weak label is that confident")
            # A weak teacher that is rarely confident leaves the student almost nothing to learn from: say so.
            self.log(f"  {spec.label_filter} filter keeps {train.num_rows} of {len(labels)} weak labels")
        if spec.conflict.kind == "implicit":
            helpful, _ = self._helpful_pairs()
            train = mix_implicit_conflict(train, helpful, spec.conflict.strength, seed=spec.seed)
        return train

    def _student(self, spec: StudentSpec, labels_stage: Stage) -> Stage:
        recipe = self.recipe
        strong = recipe.rung(spec.strong)
        determinants: dict[str, Any] = {
            "labels": labels_stage.hash,
            "rung": dataclasses.asdict(strong),
            "seed": spec.seed,
            "method": spec.method,
            **self._task_determinants(self.task),
        }
        if spec.method != "xent" or recipe.loss.soft_label_mode != "smoothing":
            determinants["loss"] = dataclasses.asdict(recipe.loss)
        if spec.conflict.kind != "none":
            determinants["conflict"] = dataclasses.asdict(spec.conflict)
        if spec.conflict.kind == "implicit":
            determinants["helpful"] = self._helpful_pairs()[1]
        if spec.label_filter != "none":
            determinants["filter"] = [spec.label_filter, recipe.filter_threshold]
        stage = Stage(self.run_dir, f"train-{spec.key}", determinants)
        if not stage.done:
            self.log(f"training {spec.describe()}")
            train = self._student_data(spec, labels_stage)
            alpha = spec.conflict.strength if spec.conflict.kind == "explicit" else 0.0
            summary = self._train_stage(stage, self.task, strong, train, spec.seed, spec.method, alpha)
            self.log(f"  student: test accuracy {summary['accuracy']:.3f} ({summary['train_seconds']} s)")
        return stage

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        """Run every stage that is not finished yet, then write metrics, predictions, plots and the report."""
        started = time.time()
        if self.splits is None:
            self.prepare()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
        models: dict[str, dict[str, Any]] = {}
        labels: dict[str, Stage] = {}
        recipe = self.recipe
        for seed in recipe.seeds:
            ceilings = {}
            for rung in self._rungs_in_use():
                ceilings[rung.name] = self._ceiling(rung, seed)
                models[f"{rung.name}.gt.seed{seed}"] = {
                    "role": "ceiling",
                    "rung": rung.name,
                    "seed": seed,
                    "stage": ceilings[rung.name],
                }
            for pair in recipe.pairs:
                for method in recipe.methods:
                    # The first teacher is the weak ceiling (or, for policies supervised by a reward model, the weak
                    # rung trained as a reward model on ground truth).
                    teacher, teacher_stage, teacher_key = recipe.rung(pair.weak), ceilings[pair.weak], pair.weak
                    labeling_task = self.task
                    if recipe.task == "dpo" and recipe.dpo.supervisor == "reward":
                        labeling_task = self.reward_task
                        teacher_stage = self._ceiling(teacher, seed, task=self.reward_task)
                        teacher_key = f"{pair.weak}-rm"
                    # Bootstrapping: each intermediate rung learns from the previous teacher's labels, then teaches.
                    for depth, middle in enumerate(pair.via):
                        spec = StudentSpec(
                            pair.weak, middle, tuple(pair.via[:depth]), method, NO_CONFLICT, "none", seed
                        )
                        labels_stage = self._labels(labeling_task, teacher, teacher_stage, f"{teacher_key}.seed{seed}")
                        labels[f"{teacher_key}.seed{seed}"] = labels_stage
                        teacher, teacher_stage = recipe.rung(middle), self._student(spec, labels_stage)
                        teacher_key, labeling_task = spec.key.removesuffix(f".seed{seed}"), self.task
                    labels_stage = self._labels(labeling_task, teacher, teacher_stage, f"{teacher_key}.seed{seed}")
                    labels[f"{teacher_key}.seed{seed}"] = labels_stage
                    for spec in student_specs(recipe, pair, method, seed):
                        models[spec.key] = {**spec.info(), "stage": self._student(spec, labels_stage)}
        predictions = {}
        for key, info in models.items():
            stage = info.pop("stage")
            predictions[key] = Dataset.from_parquet(str(stage.path("predictions.parquet")))
            atomic_write_parquet(predictions[key], self.run_dir / "predictions" / f"{key}.parquet")
            info["train_seconds"] = stage.summary().get("train_seconds")
        for key, stage in labels.items():
            atomic_copy(stage.path("labels.parquet"), self.run_dir / "labels" / f"{key}.parquet")
        metrics = build_metrics(recipe, models, predictions)
        metrics["wall_seconds"] = round(time.time() - started, 1)
        write_report(self.run_dir, metrics)
        self.log(render_console(metrics))
        self.log(f"run directory: {self.run_dir}")
        return metrics
