"""Reward models as pipeline stages: train a rung on pairs (hard or weak soft labels), label pairs, predict the test.

Pairs arrive as text (`prompt`, `chosen`, `rejected`, optional `soft_label`); this task tokenizes them with the
rung's tokenizer (long prompts lose their start, no pair is dropped), trains a `W2SRewardTrainer`, and scores pairs
with the length-sorted batched scorer of `w2s_align.labeling`. The trainer is imported when a stage trains.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset

from .cache import StageCache
from .data import hub_dataset_id
from .device import default_device
from .distributed import barrier, whole_weights
from .labeling import WeakLabeler
from .models import load_reward_model, tokenize_pairs
from .options import LABEL_COLUMNS
from .recipe import Recipe, RungConfig
from .reward_predictions import predict_pairs
from .task_interface import Task
from .training import TrainJob, fit, hold_out, lora_config, record, trainable


class RewardTask(Task):
    """Trains and applies reward models for the pipeline (`task: reward`)."""

    name = "reward"

    @classmethod
    def config_class(cls) -> type:
        from .reward_trainer import W2SRewardConfig

        return W2SRewardConfig

    def __init__(self, recipe: Recipe, cache: StageCache, log: Callable[[str], None] = print):
        super().__init__(recipe, cache, log)
        self._token_ids: dict[tuple, dict[str, list[int]]] = {}

    def tokenized(self, rung: RungConfig, pairs: Dataset) -> Dataset:
        """`pairs` with `chosen_ids`/`rejected_ids` for this rung (conversations in its chat template): each text
        tokenized once per tokenizer and run."""
        memo = self._token_ids.setdefault((rung.model, rung.revision, rung.training.max_length), {})
        return tokenize_pairs(self.rendered(rung, pairs), self.tokenizer(rung), rung.training.max_length, memo)

    def train(self, job: TrainJob) -> dict[str, Any]:
        """Train a reward model on the job's pairs (less the validation pairs the rung holds out), save it (`model/`),
        its log and its test predictions in the job's stage directory."""
        from transformers import set_seed

        from .reward_trainer import W2SRewardConfig, W2SRewardTrainer

        stage_dir, rung, pairs, seed = job.stage_dir, job.rung, job.pairs, job.seed
        set_seed(seed)
        model = trainable(load_reward_model(rung), rung)
        tokenizer = self.tokenizer(rung)
        settings = rung.training
        # Pairs are tokenized (and truncated, never dropped) here, so TRL's length filter is off.
        args = W2SRewardConfig(**job.trainer_kwargs(self.recipe.loss), max_length=None)
        columns = ["chosen_ids", "rejected_ids"] + [c for c in LABEL_COLUMNS if c in pairs.column_names]
        pairs, validation = hold_out(pairs, settings.validation_fraction, seed)
        trainer = W2SRewardTrainer(
            model=model,
            args=args,
            train_dataset=self.tokenized(rung, pairs).select_columns(columns),
            eval_dataset=None if validation is None else self.tokenized(rung, validation).select_columns(columns),
            processing_class=tokenizer,
            peft_config=lora_config(settings, "SEQ_CLS"),
        )
        trained = fit(trainer, stage_dir, self.log, rung, job.ground_truth, hub_dataset_id(self.recipe.data))
        del trainer, model
        gc.collect()
        barrier()
        # Score with the saved model, whole on every process, whatever sharding training used.
        with whole_weights():
            model = load_reward_model(rung, path=str(stage_dir / "model")).to(default_device())
        predictions = predict_pairs(
            model, tokenizer, self.tokenized(rung, job.test), settings.eval_batch_size, settings.max_length
        )
        return record(predictions, stage_dir, trained)

    def labeler(self, rung: RungConfig, stage_dir: Path, labeler_id: str) -> WeakLabeler:
        """A labeler from the reward model saved in `stage_dir/model`, whole on every process."""
        with whole_weights():
            model = load_reward_model(rung, path=str(stage_dir / "model")).to(default_device())
        return WeakLabeler(
            model,
            self.tokenizer(rung),
            labeler_id=labeler_id,
            batch_size=rung.training.eval_batch_size,
            max_length=rung.training.max_length,
        )

    def label(self, rung: RungConfig, stage_dir: Path, labeler_id: str, pairs: Dataset) -> Dataset:
        """Soft labels of `pairs` by the reward model trained in `stage_dir`."""
        return self.labeler(rung, stage_dir, labeler_id).label(self.tokenized(rung, pairs))
