"""W2SRewardTrainer: TRL's RewardTrainer trained on soft (weak) labels, with the weak-to-strong student losses.

Example:

```python
>>> from datasets import Dataset
>>> from w2s_align import W2SRewardConfig, W2SRewardTrainer
>>> dataset = Dataset.from_dict(
...     {
...         "prompt": ["Human: How do I bake bread?\\n\\nAssistant:"],
...         "chosen": [" Mix flour, water, salt and yeast, then let it rise."],
...         "rejected": [" I will not help with that."],
...         "soft_label": [0.8],  # the weak supervisor's probability that `chosen` is better
...     }
... )
>>> args = W2SRewardConfig(output_dir="out", student_loss="logconf", report_to=[])  # doctest: +SKIP
>>> trainer = W2SRewardTrainer(model="path/or/hub-id", args=args, train_dataset=dataset)  # doctest: +SKIP
>>> trainer.train()  # doctest: +SKIP
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from datasets import Dataset, IterableDataset
from transformers import DataCollator, EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from trl import RewardConfig, RewardTrainer

from .cards import BURNS_2023, YANG_2025, cite
from .collators import SoftLabelCollator
from .device import DeviceDefaults, match_adapter_dtype
from .distributed import keep_used_conversions
from .last_batch import LastBatchWeights
from .losses import StudentLossArguments, StudentObjective, reduce_pairs
from .mirrors import offline_copy
from .neutral_evaluation import NeutralEvaluation
from .options import CONFLICT_LABEL, SOFT_LABEL
from .sampling import LengthGroupedTraining, LengthGroupingArguments

if TYPE_CHECKING:
    from peft import PeftConfig, PeftModel
    from transformers import BitsAndBytesConfig


@dataclass
class W2SRewardConfig(StudentLossArguments, DeviceDefaults, LengthGroupingArguments, RewardConfig):
    r"""
    Configuration class for the [`W2SRewardTrainer`].

    Everything [`~trl.RewardConfig`] offers, with TRL's defaults, plus the weak-to-strong student losses. A TRL
    `RewardConfig` given to the trainer is converted, the W2S fields at their defaults. On a machine without a GPU,
    `use_cpu` is set (TRL's config would refuse it); the pipeline opts into length-grouped batches and precision and
    checkpointing derived from the device ([`w2s_align.device.device_settings`]). The deliberate differences from TRL
    are in docs/trl_differences.md.

    Parameters:
        student_loss (`str`, *optional*, defaults to `"xent"`):
            How the soft labels are learned: `"xent"` (cross-entropy against them), `"logconf"` (auxiliary confidence
            loss), `"product"`, `"window"` (confidence window), `"min_entropy"` (entropy minimisation) or `"kl"`
            (reverse KL to the soft label); see [`w2s_align.losses`]. With hard labels, `"xent"` is TRL's reward loss.
        soft_label_mode (`str`, *optional*, defaults to `"smoothing"`):
            `"smoothing"`: the soft label is the target of the cross-entropy. `"weight"`: each pair is oriented by its
            label and its loss weighted by the label's confidence `max(p, 1 - p)`.
        aux_coef (`float`, *optional*, defaults to `0.5`):
            `logconf`: final weight of the student's own hardened predictions in the target; `min_entropy`: final
            weight of the student's entropy.
        aux_warmup_frac (`float`, *optional*, defaults to `0.2`):
            `logconf`, `product` and `min_entropy`: fraction of the optimizer steps over which the student's weight
            ramps from 0.
        product_alpha (`float`, *optional*, defaults to `1.0`):
            `product`: exponent of the weak probability.
        product_beta (`float`, *optional*, defaults to `1.0`):
            `product`: final exponent of the student probability.
        window_radius (`float`, *optional*, defaults to `0.15`):
            `window`: a pair is learned while the student's confidence `max(q, 1 - q)` is below `0.5 + window_radius`.
        conflict_alpha (`float`, *optional*, defaults to `0.0`):
            Explicit conflict of the deception experiments: adds
            [`~w2s_align.conflicts.explicit_conflict_loss`] with this weight, which rewards the model on the pairs
            where it already prefers the harmful response (the training set's `conflict_label` column says which one
            is). 0 switches it off.
        float32_loss (`bool`, *optional*, defaults to `False`):
            Compute the loss in float32 from the model's outputs when they are in bf16 or fp16. TRL computes it in
            their dtype, as this does by default (bit for bit with hard labels); the pipeline turns it on, so that a
            soft label's cross-entropy keeps its precision.
        train_sampling_strategy (`str`, *optional*, defaults to `"random"`):
            `"random"`: TRL's random batches; `"group_by_length"`: batches of pairs of similar length, shuffled by
            the seed every epoch (see [`w2s_align.sampling`]; what the pipeline's recipes use).
    """


class W2SRewardTrainer(NeutralEvaluation, LengthGroupedTraining, LastBatchWeights, RewardTrainer):
    """
    Reward-model trainer for weak-to-strong experiments: TRL's [`~trl.RewardTrainer`] with soft labels.

    The training dataset takes every format `RewardTrainer` takes, plus an optional `soft_label` column: the
    supervisor's probability that `chosen` is preferred to `rejected` (so a pair may be stored in either order).
    Without the column every label is 1 and the `xent` loss is exactly TRL's. With `conflict_alpha`, a
    `conflict_label` column (1.0 where `chosen` is the harmful response) is required.
    `margin` and `center_rewards_coefficient` work as in TRL; a pair's `margin` is asked of the response its label
    prefers (a label of 0 with a margin is the swapped pair with that margin). Arguments are those of
    [`~trl.RewardTrainer`], in its order; `args` may be TRL's [`~trl.RewardConfig`], converted to a
    [`W2SRewardConfig`] with the weak-to-strong fields at their defaults.

    Logged metrics: TRL's, with TRL's meanings (`accuracy` and `margin`: how often and by how much the response
    stored as `chosen` outscores the other, whatever the label says; `min_reward`, `mean_reward`, `max_reward`,
    `num_tokens`), and the weak-to-strong ones under their own names: `label_agreement` (how often the model sides
    with the label's preferred response, per batch), `soft_label_confidence` (mean `max(p, 1 - p)`), `loss_xent`
    (cross-entropy against the labels alone), for `logconf` and `min_entropy` `aux_coef`, for `window`
    `window_share`, and with an explicit conflict `loss_conflict`.
    Evaluation loss is always the cross-entropy against the labels. Evaluation predicts each pair's margin with its
    label as the reference, and `eval_accuracy` (agreement with the labels over the whole `eval_dataset`) is computed
    through the `evaluate` module `pairwise_accuracy` (see [`w2s_align.evaluate_metrics`]), beside what a
    `compute_metrics` returns (it receives TRL's predictions; a metric of its own named `accuracy` is kept).
    """

    _tag_names = ["trl", "reward-trainer", "w2s-align"]
    _name = "W2S Reward"
    _paper = cite(BURNS_2023, YANG_2025)

    def __init__(
        self,
        model: str | PreTrainedModel | PeftModel,
        args: W2SRewardConfig | RewardConfig | None = None,
        data_collator: DataCollator | None = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Dataset | IterableDataset | dict[str, Dataset | IterableDataset] | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        compute_metrics: Callable[[EvalPrediction], dict] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        optimizer_cls_and_kwargs: tuple[type[torch.optim.Optimizer], dict[str, Any]] | None = None,
        preprocess_logits_for_metrics: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        quantization_config: BitsAndBytesConfig | None = None,
        peft_config: PeftConfig | None = None,
    ):
        args = W2SRewardConfig.for_trainer(args, model)
        hub_id = model if isinstance(model, str) and not Path(model).expanduser().exists() else None
        if hub_id is not None:  # an installed copy of it, as the command line loads (w2s_align.mirrors)
            model = offline_copy(hub_id) or model
        if processing_class is None and isinstance(model, str):  # loaded here to check its eos token, as TRL would
            from transformers import AutoTokenizer

            revision = (args.model_init_kwargs or {}).get("revision")
            processing_class = AutoTokenizer.from_pretrained(
                model, revision=revision, trust_remote_code=args.trust_remote_code
            )
        # Encoder tokenizers (BERT family) have no eos token; their separator ends a sequence instead.
        if args.eos_token is None and processing_class is not None and processing_class.eos_token is None:
            args.eos_token = processing_class.sep_token
        super().__init__(
            model,
            args,
            data_collator,
            train_dataset,
            eval_dataset,
            processing_class,
            compute_metrics,
            callbacks,
            optimizers,
            optimizer_cls_and_kwargs,
            preprocess_logits_for_metrics,
            quantization_config,
            peft_config,
        )
        if hub_id is not None:  # the card and config name the model as it was given, not the copy's directory
            self.model.config._name_or_path = hub_id
        keep_used_conversions(self.model)  # saved under ZeRO-3 with the names it was loaded with
        match_adapter_dtype(self.model, args.bf16)
        if data_collator is None:
            self.data_collator = SoftLabelCollator(self.data_collator)
        self._objective = StudentObjective(args)

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["chosen_ids", "rejected_ids", "margin", SOFT_LABEL, CONFLICT_LABEL]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        soft_label = inputs.pop(SOFT_LABEL, None)
        conflict_label = inputs.pop(CONFLICT_LABEL, None)
        margin = inputs.pop("margin", None)
        weight = self.pair_weights(inputs)

        inputs["use_cache"] = False
        outputs = model(**inputs)
        rewards_chosen, rewards_rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
        preference = rewards_chosen - rewards_rejected
        if soft_label is None:
            soft_label = torch.ones_like(preference)
        if margin is None:
            margin = 0.0
        elif self.args.student_loss == "kl":
            raise ValueError("student_loss 'kl' learns the soft label itself, with no margin: drop the margin column")
        training, gather_all = mode == "train", self.accelerator.gather
        # TRL's loss `-log sigmoid(r_c - r_r - margin)` asks the preferred response to lead by the margin: the pair's
        # margin toward the side its label prefers, so that a label of 0 is exactly the swapped pair.
        loss, logs = self._objective.loss(
            preference, soft_label, self.state.global_step, self.state.max_steps, training, gather_all, margin, weight
        )
        loss = loss + self._objective.conflict(preference, conflict_label, training, gather_all, logs, weight=weight)
        for key, value in logs.items():
            self._metrics[mode][key].append(value)
        if self.args.center_rewards_coefficient is not None:
            centering = reduce_pairs((rewards_chosen + rewards_rejected) ** 2, weight)
            loss = loss + self.args.center_rewards_coefficient * centering

        if mode == "train":
            num_tokens_in_batch = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += num_tokens_in_batch // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]

        with torch.no_grad():
            gather = self.accelerator.gather_for_metrics
            all_rewards = self.accelerator.gather(outputs.logits)
            self._metrics[mode]["min_reward"].append(all_rewards.min().item())
            self._metrics[mode]["mean_reward"].append(all_rewards.mean().item())
            self._metrics[mode]["max_reward"].append(all_rewards.max().item())
            # TRL's meanings: the response stored first above the second, and by how much (the dataset's `margin`
            # column shifts the loss, not this); agreement with the weak label is `label_agreement`.
            if mode == "train":  # evaluation's accuracy covers the whole eval split (`compute_metrics`)
                self._metrics[mode]["accuracy"].append(gather((preference > 0).float().mean()).mean().item())
            self._metrics[mode]["margin"].append(gather(preference.mean()).mean().item())

        return (loss, outputs) if return_outputs else loss

    def pair_margins(self, outputs) -> torch.Tensor:
        rewards_chosen, rewards_rejected = torch.chunk(outputs.logits.detach().squeeze(-1), chunks=2)
        return rewards_chosen - rewards_rejected


__all__ = ["W2SRewardConfig", "W2SRewardTrainer"]
