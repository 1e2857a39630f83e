"""Preference-optimized policies as pipeline stages (`task: dpo`): SFT, then DPO or SimPO on (weakly) labelled pairs.

Every policy starts with supervised finetuning (TRL `SFTTrainer`, completion-only loss) on the preferred response of
each of its training pairs, as the deception paper does before DPO: the ground truth's choice for the ceilings, the
response its weak labels prefer for a student (a pair whose label is exactly 0.5 prefers neither and is left out).
That SFT model is the policy's starting point and its DPO reference. SFT models are cached stages of their own,
shared by every student that trains on the same preferences.

A weak policy labels pairs as Yang et al. do (`dpo.weak_labels: likelihood_hard`): a hard label toward the response
it finds more likely, by summed log-likelihood for DPO and mean log-likelihood for SimPO (0.5 on an exact tie). With
`implicit_reward_soft` the label is `sigmoid(beta * (logratio_chosen - logratio_rejected))` (SimPO:
`sigmoid(beta * (avg_logp_chosen - avg_logp_rejected))`), close to 0.5 at small beta. The trainers are imported when a
stage trains.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, set_seed

from .artifacts import atomic_write_text
from .cache import StageCache
from .data import GT_LABEL, TEXT_COLUMNS, hub_dataset_id
from .device import default_device
from .distributed import barrier, whole_weights
from .models import load_rung_model, resolve_model_path
from .options import LABEL_COLUMNS, SOFT_LABEL
from .policy_predictions import predict_policy_pairs
from .recipe import Recipe, RungConfig
from .task_interface import Task
from .tracking import TrackerRun
from .training import TrainJob, fit, hold_out, lora_config, record
from .verbosity import progress_enabled


class DPOTask(Task):
    """Trains and applies DPO/SimPO policies for the pipeline."""

    name = "dpo"

    def __init__(self, recipe: Recipe, cache: StageCache, log: Callable[[str], None] = print):
        super().__init__(recipe, cache, log)
        self.settings = recipe.dpo
        self._token_ids: dict[tuple, dict] = {}  # per tokenizer and max_length: see `tokenize_completions`

    @classmethod
    def config_class(cls) -> type:
        from .dpo_trainer import W2SDPOConfig

        return W2SDPOConfig

    @property
    def measure(self) -> str:
        return self.settings.eval_measure or ("avg_logp" if self.settings.loss_type == "simpo" else "implicit")

    def _load_policy(self, rung: RungConfig, path: str | None = None, base: str | None = None, whole: bool = False):
        """The rung's policy (at `path`); `whole`: with all its weights on every process, to score alone on it."""
        with whole_weights() if whole else contextlib.nullcontext():
            model = load_rung_model(rung, AutoModelForCausalLM, path, base)
        model.config.pad_token_id = self.tokenizer(rung).pad_token_id
        return model

    # ------------------------------------------------------------------ SFT
    def sft(self, stage_dir: Path, rung: RungConfig, pairs: Dataset, seed: int, tracker: TrackerRun) -> dict[str, Any]:
        """SFT of the rung on the preferred response of each pair it trains on (less the pairs DPO holds out)."""
        from .sft import W2SSFTConfig, supervised_finetune

        pairs, _ = hold_out(self.rendered(rung, pairs), rung.training.validation_fraction, seed)
        labels = pairs[SOFT_LABEL] if SOFT_LABEL in pairs.column_names else [1.0] * pairs.num_rows
        # The response the label prefers, None on a tie: no order of a pair's responses decides anything.
        preferred = [None if label == 0.5 else label > 0.5 for label in labels]
        rows = [
            (prompt, chosen if keep else rejected)
            for prompt, chosen, rejected, keep in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"], preferred)
            if keep is not None
        ]
        self.log(f"  supervised finetuning of {rung.name} on {len(rows)} preferred responses")
        data = Dataset.from_dict({"prompt": [row[0] for row in rows], "completion": [row[1] for row in rows]})
        settings = rung.training
        set_seed(seed)
        args = W2SSFTConfig(
            output_dir=str(stage_dir / "checkpoints"),
            num_train_epochs=self.settings.sft_epochs,
            learning_rate=self.settings.sft_learning_rate or settings.learning_rate,
            per_device_train_batch_size=settings.per_device_train_batch_size,
            train_sampling_strategy=settings.train_sampling_strategy,  # SFT rows have `input_ids` to group by
            disable_dropout=True,  # as DPO does: the policy then does not depend on the number of processes
            max_length=settings.max_length,
            seed=seed,
            save_strategy="no",
            disable_tqdm=not progress_enabled(),
            **tracker.trainer_kwargs(),
        )
        with tracker.active():
            supervised_finetune(self._load_policy(rung), self.tokenizer(rung), data, args, stage_dir / "model")
        return {"num_pairs": pairs.num_rows}

    # ------------------------------------------------------------------ training
    def train(self, job: TrainJob) -> dict[str, Any]:
        """DPO/SimPO on the job's pairs (less the validation pairs the rung holds out) from the rung as it is (after
        its SFT stage, if any: the plan's `SFTSpec`); save the policy, its reference path and its test predictions."""
        from .dpo_trainer import W2SDPOConfig, W2SDPOTrainer

        stage_dir, rung, pairs, seed = job.stage_dir, job.rung, job.pairs, job.seed
        pairs, validation = hold_out(self.rendered(rung, pairs), rung.training.validation_fraction, seed)
        start = resolve_model_path(rung.model)
        set_seed(seed)
        policy = self._load_policy(rung, start)
        simpo = self.settings.loss_type == "simpo"
        # The reference is the starting policy, loaded explicitly (TRL would otherwise reload a path it guesses).
        reference = None if simpo else self._load_policy(rung, start)
        settings = rung.training
        args = W2SDPOConfig(
            **job.trainer_kwargs(self.recipe.loss),
            loss_type=[self.settings.loss_type],
            beta=self.settings.beta,
            simpo_gamma=self.settings.simpo_gamma,
            max_length=settings.max_length,
            precompute_ref_log_probs=self.settings.precompute_ref_log_probs and not simpo,
        )
        columns = [*TEXT_COLUMNS, *(c for c in LABEL_COLUMNS if c in pairs.column_names)]
        trainer = W2SDPOTrainer(
            model=policy,
            ref_model=reference,
            args=args,
            train_dataset=pairs.select_columns(columns),
            eval_dataset=None if validation is None else validation.select_columns(columns),
            processing_class=self.tokenizer(rung),
            peft_config=lora_config(settings, "CAUSAL_LM"),
        )
        trained = fit(trainer, stage_dir, self.log, rung, job.ground_truth, hub_dataset_id(self.recipe.data))
        atomic_write_text(stage_dir / "reference.txt", start)
        del trainer, policy, reference
        gc.collect()
        barrier()
        policy = self._load_policy(rung, str(stage_dir / "model"), base=start, whole=True)
        predictions = self._predict(rung, policy, start, job.test)
        return record(predictions, stage_dir, trained)

    def _predict(self, rung: RungConfig, policy, reference_path: str | None, pairs: Dataset) -> Dataset:
        pairs = self.rendered(rung, pairs)
        policy.to(default_device())
        reference = None
        if reference_path is not None:
            reference = self._load_policy(rung, reference_path, whole=True).to(default_device())
        return predict_policy_pairs(
            policy,
            reference,
            self.tokenizer(rung),
            pairs,
            beta=self.settings.beta,
            measure=self.measure,
            batch_size=rung.training.eval_batch_size,
            max_length=rung.training.max_length,
            memo=self._token_ids.setdefault((rung.model, rung.revision, rung.training.max_length), {}),
        )

    def label(self, rung: RungConfig, stage_dir: Path, labeler_id: str, pairs: Dataset) -> Dataset:
        """Labels of `pairs` by the policy trained in `stage_dir` (`dpo.weak_labels`, see the module docstring)."""
        reference = (stage_dir / "reference.txt").read_text()
        policy = self._load_policy(rung, str(stage_dir / "model"), base=reference, whole=True)
        scored = self._predict(rung, policy, reference, pairs)
        column, scale = self.settings.label_score()
        margin = scale * np.asarray(scored[column], dtype=np.float64)
        if self.settings.weak_labels == "likelihood_hard":
            soft = (0.5 + 0.5 * np.sign(margin)).tolist()
        else:
            soft = torch.sigmoid(torch.tensor(margin, dtype=torch.float32)).tolist()
        keep = ("id", *TEXT_COLUMNS, "kind", GT_LABEL)
        labels = pairs.select_columns([c for c in pairs.column_names if c in keep])
        labels = labels.add_column(SOFT_LABEL, soft)
        return labels.add_column("labeler", [labeler_id] * labels.num_rows)
