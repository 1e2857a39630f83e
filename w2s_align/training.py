"""What the reward and DPO tasks share when they train a rung: tokenizers, trainer arguments, LoRA, resuming."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import Trainer
from transformers.trainer_callback import PrinterCallback

from .models import load_tokenizer, resolve_model_path
from .recipe import LossSettings, Recipe, RungConfig, TrainingSettings


class Task:
    """Base of the pipeline's tasks (`RewardTask`, `DPOTask`): the recipe, the log, and one tokenizer per model."""

    name = ""

    def __init__(self, recipe: Recipe, log: Callable[[str], None] = print):
        self.recipe = recipe
        self.log = log
        self._tokenizers: dict[str, Any] = {}

    def tokenizer(self, rung: RungConfig):
        key = f"{rung.model}@{rung.revision}"
        if key not in self._tokenizers:
            self._tokenizers[key] = load_tokenizer(resolve_model_path(rung.model), rung.revision)
        return self._tokenizers[key]


def trainer_kwargs(
    settings: TrainingSettings, loss: LossSettings, output_dir: Path, seed: int, method: str, conflict_alpha: float
) -> dict[str, Any]:
    """Keyword arguments of a `W2SRewardConfig` / `W2SDPOConfig` for one rung, method and conflict."""
    return {
        "output_dir": str(output_dir),
        "seed": seed,
        "student_loss": method,
        "soft_label_mode": loss.soft_label_mode,
        "aux_coef": loss.aux_coef,
        "aux_warmup_frac": loss.warmup_frac,
        "aux_buffer_size": loss.buffer_size,
        "product_alpha": loss.product_alpha,
        "product_beta": loss.product_beta,
        "conflict_alpha": conflict_alpha,
        "learning_rate": settings.learning_rate,
        "num_train_epochs": settings.num_train_epochs,
        "per_device_train_batch_size": settings.per_device_train_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "warmup_steps": settings.warmup_steps,
        "weight_decay": settings.weight_decay,
        "lr_scheduler_type": settings.lr_scheduler_type,
        "report_to": [],
        "logging_steps": 10,
        "save_strategy": "steps",
        "save_steps": 500,
        "save_total_limit": 1,
        "disable_tqdm": True,
        **settings.trainer_kwargs,
    }


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


def train_resumably(trainer: Trainer, checkpoints: Path, log) -> None:
    """Train, resuming from the last checkpoint a killed run left in `checkpoints`."""
    # The pipeline logs one summary line per stage instead of the trainer's raw log dictionaries.
    trainer.remove_callback(PrinterCallback)
    resume = checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))
    if resume:
        log(f"  resuming from {checkpoints}")
    trainer.train(resume_from_checkpoint=True if resume else None)
