"""What the reward and DPO tasks share when they train a rung: trainer arguments, LoRA, resume and save."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from datasets import Dataset

from .artifacts import atomic_write_json, atomic_write_parquet
from .device import device_settings
from .distributed import barrier, broadcast, is_main_process
from .errors import W2SInputError
from .options import StudentLossSettings
from .recipe import RungConfig, TrainingSettings, validation_size
from .tracking import TrackerRun
from .verbosity import progress_enabled, trainer_lines_enabled

if TYPE_CHECKING:
    from transformers import Trainer, TrainerCallback

# Where `fit` saves a trained model's log history, and `record` its test predictions, in its stage directory.
TRAIN_LOG = "train_log.json"
PREDICTIONS_FILE = "predictions.parquet"
# A student's predictions on the split it learned from, beside its teacher's label of each pair (`teacher`): how much
# it imitates its teacher (the deception comparisons read it).
TRAIN_PREDICTIONS_FILE = "train_predictions.parquet"
TEACHER_COLUMN = "teacher"


@dataclasses.dataclass(frozen=True)
class TrainJob:
    """One model a task trains ([`~w2s_align.task_interface.Task.train`]), as the stage runner hands it over.

    Args:
        stage_dir (`Path`): where the model (`model/`), its log and its test predictions are saved.
        rung ([`RungConfig`]): the rung trained (after its SFT stage, if any).
        pairs (`Dataset`): the training examples; a `soft_label` column holds a teacher's labels, or with
            `ground_truth` the ground truth.
        seed (`int`): the training seed.
        method (`str`): the student loss.
        conflict_alpha (`float`): the explicit conflict's weight (0: none).
        test (`Dataset`): the test split the model's predictions are saved on.
        tracker ([`TrackerRun`]): where training logs.
        ground_truth (`bool`, *optional*, defaults to `False`): a ceiling, whose card names TRL's method.
    """

    stage_dir: Path
    rung: RungConfig
    pairs: Dataset
    seed: int
    method: str
    conflict_alpha: float
    test: Dataset
    tracker: TrackerRun
    ground_truth: bool = False

    def trainer_kwargs(self, loss: StudentLossSettings) -> dict[str, Any]:
        """The trainer config's arguments for this job ([`trainer_kwargs`])."""
        return trainer_kwargs(
            self.rung.training, loss, self.stage_dir, self.seed, self.method, self.conflict_alpha, self.tracker
        )


def fit(
    trainer: Trainer,
    stage_dir: Path,
    log: Callable[[str], None],
    rung: RungConfig,
    ground_truth: bool = False,
    dataset: str | None = None,
) -> dict[str, Any]:
    """Train (resuming from the last checkpoint a killed run left), save the model in `stage_dir/model` and the log
    history in `stage_dir/train_log.json` ([`TRAIN_LOG`]); return the number of optimizer steps and how the training
    ran (processes, distributed type, ZeRO stage), for the stage summary. The model card names `rung`'s model as the
    recipe names it (a hub id or a local path) as the base, `dataset` (a Hub id) as the data, and for a model trained
    on the `ground_truth` TRL's trainer and paper instead of the weak-to-strong method's."""
    from transformers.trainer_callback import PrinterCallback

    from .cards import record_base_model, trl_base

    # Without a terminal the pipeline logs one line per stage; the trainer's raw log lines only at debug level.
    if not trainer_lines_enabled():
        trainer.remove_callback(PrinterCallback)
    trainer.add_callback(divergence_guard(stage_dir.name, rung))
    resume = last_whole_checkpoint(Path(trainer.args.output_dir))
    if resume is not None:
        log(f"  resuming from {resume}")
    trainer.train(resume_from_checkpoint=None if resume is None else str(resume))
    # save_model writes once (main process), gathers ZeRO-3 shards, and saves LoRA adapters (with a reward head).
    trainer.save_model(str(stage_dir / "model"))
    # TRL's model card (it cites the trainer's papers), in the trainer's output_dir; the pipeline completes it. TRL
    # names the base model after the config path, a directory (so "None") for an offline copy of a hub model, and the
    # quick start after `hub_model_id`: the saved directory here (`w2s_align.hub` puts the repository's id on push).
    record_base_model(trainer, stage_dir / "model", rung.model)
    trainer.hub_model_id = str(stage_dir / "model")
    if ground_truth:
        base = trl_base(type(trainer))
        trainer._name, trainer._paper = getattr(base, "_name", base.__name__), getattr(base, "_paper", {})
    trainer.create_model_card(model_name=stage_dir.name, dataset_name=dataset, tags=["weak-to-strong"])
    atomic_write_json(stage_dir / TRAIN_LOG, trainer.state.log_history)
    return {"train_steps": trainer.state.global_step, "launch": launch_summary(trainer)}


def divergence_guard(stage: str, rung: RungConfig) -> TrainerCallback:
    """A callback that stops training the logged step its loss or gradient norm is not finite, with one line naming
    the stage, the step and the setting to change (transformers logs the mean of the finite losses otherwise, and the
    run would report a broken model's predictions)."""
    from transformers import TrainerCallback

    class StopOnDivergence(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            # Under fp16 an overflowing step has an infinite gradient norm and is skipped: that is loss scaling.
            watched = ("loss",) if args.fp16 else ("loss", "grad_norm")
            for key, value in (logs or {}).items():
                if key in watched and isinstance(value, float) and not math.isfinite(value):
                    raise W2SInputError(
                        f"{stage}: the training {key.replace('_', ' ')} is {value} at step {state.global_step} (it "
                        f"diverged); lower the learning rate of rung {rung.name!r} ({args.learning_rate:g}), or raise "
                        "'warmup_steps'"
                    )

    return StopOnDivergence()


def launch_summary(trainer: Trainer) -> dict[str, Any]:
    """How `trainer` trained: its number of processes, distributed type and, under DeepSpeed, the ZeRO stage."""
    accelerator = trainer.accelerator
    out = {"processes": accelerator.num_processes, "distributed_type": str(accelerator.distributed_type.value)}
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        out["zero_stage"] = plugin.zero_stage
    return out


def last_whole_checkpoint(checkpoints: Path) -> Path | None:
    """The newest `checkpoint-<step>` in `checkpoints` that a killed run left whole, or None; the ones a kill left
    half-written are deleted, so that training saves them again from scratch.

    transformers writes a checkpoint's `trainer_state.json` last, so a checkpoint is whole when that file reads back.
    """
    whole = []
    for path in checkpoints.glob("checkpoint-*"):
        try:
            json.loads((path / "trainer_state.json").read_text())
            whole.append((int(path.name.removeprefix("checkpoint-")), path))
        except (OSError, ValueError):
            if is_main_process():
                shutil.rmtree(path, ignore_errors=True)
    barrier()
    # Every process resumes from the checkpoint the main process chose (they read one shared directory).
    return broadcast(max(whole)[1] if whole else None)


def trainable(model, rung: RungConfig):
    """A freshly loaded sequence classifier made ready to train as the rung says: a 4-bit model prepared for
    adapters (QLoRA), the input embeddings frozen with `training.freeze_embeddings`."""
    if getattr(model, "is_loaded_in_4bit", False):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if rung.training.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


def hold_out(pairs: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """`pairs` split into the pairs a model trains on and its validation pairs (`fraction` of them, at least one,
    drawn by `seed`), each in the order of `pairs`; no validation split when `fraction` is 0."""
    if fraction == 0:
        return pairs, None
    order = np.random.default_rng(seed).permutation(pairs.num_rows)
    size = validation_size(fraction, pairs.num_rows)
    return pairs.select(np.sort(order[size:])), pairs.select(np.sort(order[:size]))


def record(predictions: Dataset, stage_dir: Path, trained: dict[str, Any]) -> dict[str, Any]:
    """Save a trained model's test predictions in its stage; return the stage summary (with what [`fit`] returned).
    A model whose predictions are not finite diverged: the stage stops, unfinished."""
    broken = int(np.sum(~np.isfinite(np.asarray(predictions["prob_chosen"], dtype=float))))
    if broken:
        raise W2SInputError(
            f"{stage_dir.name}: {broken} of its {predictions.num_rows} test predictions are not finite numbers (the "
            "model diverged); lower its rung's learning rate, or raise 'warmup_steps'"
        )
    atomic_write_parquet(predictions, stage_dir / PREDICTIONS_FILE)
    return {"accuracy": float(sum(predictions["correct"]) / predictions.num_rows), **trained}


def trainer_kwargs(
    settings: TrainingSettings,
    loss: StudentLossSettings,
    stage_dir: Path,
    seed: int,
    method: str,
    conflict_alpha: float,
    tracker: TrackerRun,
) -> dict[str, Any]:
    """Keyword arguments of a `W2SRewardConfig` / `W2SDPOConfig` for one rung, method and conflict, logging to
    `tracker`; the trainer's checkpoints go to `stage_dir/checkpoints`. The recipe's `loss` block holds trainer fields
    under their own names.

    Where the trainer classes keep TRL's defaults, a recipe's run chooses its own, explicitly: the rung's
    `train_sampling_strategy` (length grouping unless the recipe says otherwise), the loss in float32
    (`float32_loss`), and `bf16`, activation checkpointing and `use_cpu` derived from the device
    ([`~w2s_align.device.device_settings`]) unless the rung's `trainer_kwargs` set them, so that a recipe runs
    unchanged on a CPU and a GPU."""
    kwargs = {
        "output_dir": str(stage_dir / "checkpoints"),
        "seed": seed,
        "student_loss": method,
        "conflict_alpha": conflict_alpha,
        **dataclasses.asdict(loss),
        "learning_rate": settings.learning_rate,
        "num_train_epochs": settings.num_train_epochs,
        "per_device_train_batch_size": settings.per_device_train_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "warmup_steps": settings.warmup_steps,
        "weight_decay": settings.weight_decay,
        "lr_scheduler_type": settings.lr_scheduler_type,
        "train_sampling_strategy": settings.train_sampling_strategy,
        **tracker.trainer_kwargs(),
        # Evaluation does not change training (the validation pairs are held out either way): result-neutral.
        "eval_strategy": "epoch" if settings.validation_fraction > 0 else "no",
        "per_device_eval_batch_size": settings.eval_batch_size,
        # transformers takes a fraction below 1 and whole steps above it.
        "logging_steps": settings.logging_steps if settings.logging_steps < 1 else round(settings.logging_steps),
        "save_strategy": "steps",
        "save_steps": 500,
        "save_total_limit": 1,
        "disable_tqdm": not progress_enabled(),  # in a terminal: a bar and the loss lines
        # Soft labels' cross-entropies at full precision under bf16 (TRL computes the loss in the outputs' dtype).
        "float32_loss": True,
        **settings.trainer_kwargs,
    }
    return {**kwargs, **device_settings(kwargs)}


def lora_config(settings: TrainingSettings, task_type: str):
    """The rung's `peft.LoraConfig`, or None without LoRA. `task_type="SEQ_CLS"` also trains the reward head."""
    if settings.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        task_type=task_type,
        r=settings.lora.r,
        lora_alpha=settings.lora.alpha,
        lora_dropout=settings.lora.dropout,
        target_modules=settings.lora.target_modules,
    )
