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
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from datasets import Dataset, DatasetDict
from transformers import set_seed
from transformers.trainer_callback import PrinterCallback

from .analysis.report import build_metrics, render_console, write_report
from .artifacts import Stage, atomic_copy, atomic_write_json, atomic_write_parquet, atomic_write_text
from .conflicts import ConflictSetting, helpfulness_pairs, mix_implicit_conflict
from .data import SPLITS, load_helpful_pairs, load_splits
from .errors import W2SInputError
from .evaluation import predict_pairs
from .labeling import WeakLabeler, load_labels
from .models import check_rung_loads, load_reward_model, load_tokenizer, resolve_model_path, tokenize_pairs
from .recipe import PairConfig, Recipe, RungConfig
from .reward_trainer import W2SRewardConfig, W2SRewardTrainer

TRAINER_FIELDS = {f.name for f in dataclasses.fields(W2SRewardConfig)}
# Set by the pipeline itself from the recipe; a `trainer_kwargs` entry may not override them.
PIPELINE_OWNED = {"output_dir", "seed", "student_loss", "max_length", "conflict_alpha"}


def _local_file_signature(path: str | None) -> Any:
    """Size and modification time of local data files, so an edited file invalidates the data stage."""
    if not path or not Path(path).exists():
        return None
    files = [Path(path)] if Path(path).is_file() else sorted(p for p in Path(path).rglob("*") if p.is_file())
    return [(str(p), p.stat().st_size, int(p.stat().st_mtime)) for p in files]


NO_CONFLICT = ConflictSetting()


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
        self.log = log
        self._tokenized: dict[tuple, Dataset] = {}
        self._tokenizers: dict[str, Any] = {}
        self.splits: DatasetDict | None = None
        self.data_hash: str | None = None

    # ------------------------------------------------------------------ checks and data
    def prepare(self) -> DatasetDict:
        """Load (or reuse) the splits and check every rung, before any training. Raises `W2SInputError`."""
        for rung in self.recipe.ladder:
            for key in rung.training.trainer_kwargs:
                if key not in TRAINER_FIELDS or key in PIPELINE_OWNED:
                    reason = "is set by the pipeline" if key in PIPELINE_OWNED else "is not a W2SRewardConfig field"
                    raise W2SInputError(f"ladder rung {rung.name!r}: training.trainer_kwargs.{key} {reason}")
        data = self.recipe.data
        determinants = {"data": dataclasses.asdict(data), "files": _local_file_signature(data.path)}
        if data.files:
            determinants["files"] = {split: _local_file_signature(path) for split, path in data.files.items()}
        stage = Stage(self.run_dir, "data", determinants)
        if stage.done:
            splits = DatasetDict({s: Dataset.from_parquet(str(stage.path(f"{s}.parquet"))) for s in SPLITS})
        else:
            splits = load_splits(data)
            stage.begin()
            for split in SPLITS:
                atomic_write_parquet(splits[split], stage.path(f"{split}.parquet"))
            stage.finish({split: splits[split].num_rows for split in SPLITS})
        self.log(f"data: {', '.join(f'{s} {splits[s].num_rows}' for s in SPLITS)} pairs ({data.source})")
        for rung in self._rungs_in_use():
            check_rung_loads(rung)
        self.splits, self.data_hash = splits, stage.hash
        return splits

    def _rungs_in_use(self) -> list[RungConfig]:
        names = {name for pair in self.recipe.pairs for name in (pair.weak, pair.strong)}
        return [rung for rung in self.recipe.ladder if rung.name in names]

    def _tokenizer(self, rung: RungConfig):
        key = f"{rung.model}@{rung.revision}"
        if key not in self._tokenizers:
            self._tokenizers[key] = load_tokenizer(resolve_model_path(rung.model), rung.revision)
        return self._tokenizers[key]

    def _tokenized_split(self, rung: RungConfig, split: str) -> Dataset:
        key = (rung.model, rung.revision, rung.training.max_length, split)
        if key not in self._tokenized:
            self._tokenized[key] = tokenize_pairs(self.splits[split], self._tokenizer(rung), rung.training.max_length)
        return self._tokenized[key]

    # ------------------------------------------------------------------ stages
    def _train_stage(
        self,
        stage: Stage,
        rung: RungConfig,
        train_dataset: Dataset,
        seed: int,
        method: str,
        conflict_alpha: float = 0.0,
    ) -> dict[str, Any]:
        """Train (or resume training) one reward model, save it and its test predictions, and finish the stage."""
        started = time.time()
        stage.begin(keep_partial=True)
        checkpoints = stage.path("checkpoints")
        resume = checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))
        set_seed(seed)
        model = load_reward_model(rung)
        if rung.training.freeze_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        tokenizer = self._tokenizer(rung)
        settings = rung.training
        loss = self.recipe.loss
        args = W2SRewardConfig(
            output_dir=str(checkpoints),
            seed=seed,
            student_loss=method,
            aux_coef=loss.aux_coef,
            aux_warmup_frac=loss.warmup_frac,
            aux_buffer_size=loss.buffer_size,
            product_alpha=loss.product_alpha,
            product_beta=loss.product_beta,
            conflict_alpha=conflict_alpha,
            learning_rate=settings.learning_rate,
            num_train_epochs=settings.num_train_epochs,
            per_device_train_batch_size=settings.per_device_train_batch_size,
            gradient_accumulation_steps=settings.gradient_accumulation_steps,
            warmup_steps=settings.warmup_steps,
            weight_decay=settings.weight_decay,
            lr_scheduler_type=settings.lr_scheduler_type,
            max_length=None,  # pairs are tokenized (and truncated, never dropped) by the pipeline
            **{
                "report_to": [],
                "logging_steps": 10,
                "save_strategy": "steps",
                "save_steps": 500,
                "save_total_limit": 1,
                "disable_tqdm": True,
                **settings.trainer_kwargs,
            },
        )
        peft_config = None
        if settings.lora is not None:
            from peft import LoraConfig

            peft_config = LoraConfig(
                task_type="SEQ_CLS",
                r=settings.lora.r,
                lora_alpha=settings.lora.alpha,
                lora_dropout=settings.lora.dropout,
                target_modules=settings.lora.target_modules,
            )
        columns = ["chosen_ids", "rejected_ids"] + (
            ["soft_label"] if "soft_label" in train_dataset.column_names else []
        )
        trainer = W2SRewardTrainer(
            model=model,
            args=args,
            train_dataset=train_dataset.select_columns(columns),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        # The pipeline logs one summary line per stage instead of the trainer's raw log dictionaries.
        trainer.remove_callback(PrinterCallback)
        if resume:
            self.log(f"  resuming {stage.name} from {checkpoints}")
        trainer.train(resume_from_checkpoint=True if resume else None)
        model = trainer.model
        if settings.lora is not None:
            model = model.merge_and_unload()
        model.save_pretrained(stage.path("model"))
        tokenizer.save_pretrained(stage.path("model"))
        atomic_write_json(stage.path("train_log.json"), trainer.state.log_history)
        predictions = predict_pairs(
            model, tokenizer, self._tokenized_split(rung, "test"), settings.eval_batch_size, settings.max_length
        )
        atomic_write_parquet(predictions, stage.path("predictions.parquet"))
        shutil.rmtree(checkpoints, ignore_errors=True)
        summary = {
            "accuracy": float(sum(predictions["correct"]) / predictions.num_rows),
            "train_seconds": round(time.time() - started, 1),
            "train_steps": trainer.state.global_step,
        }
        stage.finish(summary)
        del trainer, model
        gc.collect()
        return summary

    def _ceiling(self, rung: RungConfig, seed: int) -> Stage:
        stage = Stage(
            self.run_dir,
            f"train-{rung.name}-gt-seed{seed}",
            {"data": self.data_hash, "rung": dataclasses.asdict(rung), "seed": seed, "labels": "ground-truth"},
        )
        if not stage.done:
            self.log(f"training {rung.name} on ground truth (seed {seed})")
            summary = self._train_stage(stage, rung, self._tokenized_split(rung, "gt"), seed, "xent")
            self.log(f"  {rung.name}: test accuracy {summary['accuracy']:.3f} ({summary['train_seconds']} s)")
        return stage

    def _labels(self, teacher: RungConfig, teacher_stage: Stage, teacher_key: str) -> Stage:
        """Label the w2s split with a trained model (a weak ceiling, or an intermediate student when bootstrapping)."""
        stage = Stage(self.run_dir, f"labels-{teacher_key}", {"model": teacher_stage.hash, "data": self.data_hash})
        if not stage.done:
            self.log(f"labeling the w2s split with {teacher_key}")
            stage.begin()
            model = load_reward_model(teacher, path=str(teacher_stage.path("model")))
            model.to("cuda" if torch.cuda.is_available() else "cpu")
            labeler = WeakLabeler(
                model,
                self._tokenizer(teacher),
                labeler_id=f"{teacher_key}@{teacher_stage.dir.name}",
                batch_size=teacher.training.eval_batch_size,
                max_length=teacher.training.max_length,
            )
            labels = labeler.label(self._tokenized_split(teacher, "w2s"))
            labeler.save(labels, stage.dir)
            stage.finish({"num_pairs": labels.num_rows})
            del model
            gc.collect()
        return stage

    def _helpful_pairs(self, size: int) -> tuple[Dataset, str]:
        """Helpfulness pairs for the implicit conflict (cached), oriented by helpfulness with hard labels."""
        config = self.recipe.conflicts.helpful
        determinants = {"helpful": dataclasses.asdict(config), "size": size, "data": self.data_hash}
        determinants["files"] = _local_file_signature(config.path)
        stage = Stage(self.run_dir, "helpful", determinants)
        if not stage.done:
            pairs = helpfulness_pairs(load_helpful_pairs(config, size, self.splits))
            stage.begin()
            atomic_write_parquet(pairs, stage.path("helpful.parquet"))
            stage.finish({"num_pairs": pairs.num_rows})
        return Dataset.from_parquet(str(stage.path("helpful.parquet"))), stage.hash

    def _student_data(self, spec: StudentSpec, strong: RungConfig, labels_stage: Stage) -> Dataset:
        """The student's training pairs: the w2s split with the teacher's soft labels, filtered and mixed."""
        labels = load_labels(labels_stage.dir)
        train = self._tokenized_split(strong, "w2s")
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
        if spec.conflict.kind == "implicit":
            helpful, _ = self._helpful_pairs(self._helpful_size())
            helpful = tokenize_pairs(helpful, self._tokenizer(strong), strong.training.max_length)
            train = mix_implicit_conflict(train, helpful, spec.conflict.strength, seed=spec.seed)
        return train

    def _helpful_size(self) -> int:
        return math.ceil(max(self.recipe.conflicts.ratios) * self.splits["w2s"].num_rows)

    def _student(self, spec: StudentSpec, labels_stage: Stage) -> Stage:
        recipe = self.recipe
        strong = recipe.rung(spec.strong)
        determinants: dict[str, Any] = {
            "labels": labels_stage.hash,
            "rung": dataclasses.asdict(strong),
            "seed": spec.seed,
            "method": spec.method,
        }
        if spec.method != "xent":
            determinants["loss"] = dataclasses.asdict(recipe.loss)
        if spec.conflict.kind != "none":
            determinants["conflict"] = dataclasses.asdict(spec.conflict)
        if spec.conflict.kind == "implicit":
            determinants["helpful"] = self._helpful_pairs(self._helpful_size())[1]
        if spec.label_filter != "none":
            determinants["filter"] = [spec.label_filter, recipe.filter_threshold]
        stage = Stage(self.run_dir, f"train-{spec.key}", determinants)
        if not stage.done:
            self.log(f"training {spec.describe()}")
            train = self._student_data(spec, strong, labels_stage)
            alpha = spec.conflict.strength if spec.conflict.kind == "explicit" else 0.0
            summary = self._train_stage(stage, strong, train, spec.seed, spec.method, conflict_alpha=alpha)
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
                    # Bootstrapping: each intermediate rung learns from the previous teacher's labels, then teaches.
                    teacher, teacher_stage, teacher_key = recipe.rung(pair.weak), ceilings[pair.weak], pair.weak
                    for depth, middle in enumerate(pair.via):
                        spec = StudentSpec(
                            pair.weak, middle, tuple(pair.via[:depth]), method, NO_CONFLICT, "none", seed
                        )
                        labels_stage = self._labels(teacher, teacher_stage, f"{teacher_key}.seed{seed}")
                        labels[f"{teacher_key}.seed{seed}"] = labels_stage
                        teacher, teacher_stage = recipe.rung(middle), self._student(spec, labels_stage)
                        teacher_key = spec.key.removesuffix(f".seed{seed}")
                    labels_stage = self._labels(teacher, teacher_stage, f"{teacher_key}.seed{seed}")
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
