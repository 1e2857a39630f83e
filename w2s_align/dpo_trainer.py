"""W2SDPOTrainer: TRL's DPOTrainer on pairs labelled by a weak supervisor, with SimPO and the explicit conflict.

The weak supervisor's confidence is kept as a soft label (probability that `chosen` is better): as per-pair label
smoothing (`soft_label_mode="smoothing"`, the default) or as a weight on a pair oriented by the label
(`soft_label_mode="weight"`). The student losses (`xent`, `logconf`, `product`) are those of the reward trainer,
applied to the policy's preference logit:

- DPO (`loss_type=["sigmoid"]`): `beta * ((log pi(y_c) - log ref(y_c)) - (log pi(y_r) - log ref(y_r)))`;
- SimPO (`loss_type=["simpo"]`): `beta * (log pi(y_c) / |y_c| - log pi(y_r) / |y_r|)`, with the target margin
  `simpo_gamma` and no reference model.

Example:

```python
>>> from w2s_align import W2SDPOConfig, W2SDPOTrainer
>>> args = W2SDPOConfig(output_dir="student", student_loss="logconf", beta=0.1, report_to=[])
>>> trainer = W2SDPOTrainer(model=policy, args=args, train_dataset=weakly_labelled_pairs)  # doctest: +SKIP
>>> trainer.train()  # doctest: +SKIP
```
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from accelerate.utils import is_peft_model
from datasets import Dataset
from transformers import PreTrainedModel
from trl import DPOConfig, DPOTrainer

from .cards import BURNS_2023, YANG_2025, cite
from .collators import CONFLICT_LABEL, LABEL_COLUMNS, SOFT_LABEL, SoftLabelCollator
from .device import DeviceDefaults, match_adapter_dtype
from .evaluate_metrics import compute_pairwise_accuracy
from .last_batch import LastBatchWeights
from .losses import StudentLossArguments, StudentObjective
from .options import PREFERENCE_LOSSES
from .sampling import LengthGroupedTraining, LengthGroupingArguments, pair_lengths
from .validation import NeutralEvaluation

_NON_MODEL_KEYS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}


@dataclass
class W2SDPOConfig(StudentLossArguments, DeviceDefaults, LengthGroupingArguments, DPOConfig):
    r"""
    Configuration class for the [`W2SDPOTrainer`].

    Everything [`~trl.DPOConfig`] offers, plus the weak-to-strong student losses of [`W2SRewardConfig`]
    (`student_loss`, `soft_label_mode`, `aux_coef`, `aux_warmup_frac`, `product_alpha`, `product_beta`,
    `window_radius`, `conflict_alpha`) and SimPO. `bf16` and activation checkpointing are derived from the device when
    left unset, and batches group pairs of similar length (`train_sampling_strategy`, as in [`W2SRewardConfig`]).

    Parameters:
        loss_type (`list[str]`, *optional*, defaults to `["sigmoid"]`):
            `["sigmoid"]` (DPO) or `["simpo"]` (SimPO: length-normalised log-likelihood, no reference model; the
            SimPO paper uses `beta=2.0`, `simpo_gamma=1.0`).
        simpo_gamma (`float`, *optional*, defaults to `1.0`):
            SimPO's target reward margin.
        conflict_alpha (`float`, *optional*, defaults to `0.0`):
            Explicit conflict: adds `alpha * mean_i c_i * (-log sigmoid(u_h - u_s))`, where `u` is the implicit reward
            (DPO) or the scaled length-normalised log-likelihood (SimPO) of the harmful (`h`) and the safe (`s`)
            response, and `c_i = 1` when the policy already prefers the harmful one by its raw log-likelihood (DPO)
            or mean log-likelihood (SimPO), as in Yang et al. The `conflict_label` column (1.0 where `chosen` is
            harmful) says which response is harmful.
    """

    simpo_gamma: float = field(default=1.0, metadata={"help": "SimPO: target reward margin gamma."})

    def __post_init__(self):
        super().__post_init__()
        if self.loss_type not in [[loss] for loss in PREFERENCE_LOSSES]:
            raise ValueError(
                f"W2SDPOTrainer implements loss_type ['sigmoid'] (DPO) and ['simpo'], got {self.loss_type}; for other "
                "TRL losses use trl.DPOTrainer"
            )
        if self.simpo and self.precompute_ref_log_probs:
            raise ValueError("SimPO uses no reference model: precompute_ref_log_probs must be False")
        if self.simpo and self.student_loss == "kl":
            raise ValueError("student_loss 'kl' has no margin for SimPO's simpo_gamma: use it with loss_type sigmoid")

    @property
    def simpo(self) -> bool:
        return self.loss_type == ["simpo"]


class W2SDPOTrainer(NeutralEvaluation, LengthGroupedTraining, LastBatchWeights, DPOTrainer):
    """
    DPO/SimPO trainer for weak-to-strong experiments: TRL's [`~trl.DPOTrainer`] with soft (weak) labels.

    The training dataset takes the formats `DPOTrainer` takes (`prompt`, `chosen`, `rejected`; conversational or
    standard), plus an optional `soft_label` column (probability that `chosen` is better, 1.0 when absent). Arguments
    are those of `DPOTrainer`.

    The reference model is always the starting policy. When `ref_model` is not given, TRL reloads the reference from
    `model.config._name_or_path`, which fails for a model built in memory and silently uses the on-disk weights for a
    model changed in memory; this trainer uses a frozen copy of the `model` it is given instead (with PEFT, the
    adapter-free base model; with `precompute_ref_log_probs`, the model before training). SimPO keeps no reference.

    Logged metrics: `rewards/chosen`, `rewards/rejected`, `rewards/accuracies`, `rewards/margins` (the implicit
    rewards, or SimPO's scaled average log-likelihoods), `logps/chosen`, `logps/rejected`, `soft_label_confidence`,
    `label_agreement`, `loss_xent`, `aux_coef` (logconf, min_entropy), `window_share` (window), `loss_conflict`
    (explicit conflict). Evaluation predicts each pair's margin (the implicit reward difference, or SimPO's scaled
    average log-likelihood difference) with its label as the reference, and `eval_accuracy` (agreement with the labels
    over the whole `eval_dataset`) is computed through the `evaluate` module `pairwise_accuracy` (see
    [`w2s_align.evaluate_metrics`]) unless `compute_metrics` is given.
    """

    _tag_names = ["trl", "dpo", "w2s-align"]
    _name = "W2S DPO"
    _paper = cite(YANG_2025, BURNS_2023)

    def __init__(
        self,
        model,
        ref_model=None,
        args: W2SDPOConfig | None = None,
        data_collator=None,
        compute_metrics=None,
        **kwargs,
    ):
        if args is None:
            model_name = model if isinstance(model, str) else model.config._name_or_path
            args = W2SDPOConfig(f"{model_name.split('/')[-1]}-W2SDPO")
        elif not isinstance(args, W2SDPOConfig):
            raise TypeError(f"args must be a W2SDPOConfig, got {type(args).__name__}")
        in_memory = isinstance(model, PreTrainedModel) and not is_peft_model(model)
        needs_copy = ref_model is None and in_memory and kwargs.get("peft_config") is None
        if needs_copy and (args.simpo or not args.precompute_ref_log_probs):
            from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

            if is_deepspeed_zero3_enabled() and not args.simpo:
                raise ValueError(
                    "under DeepSpeed ZeRO-3 the model's parameters are partitioned, so a copy of it as the reference "
                    "would be empty: pass ref_model= (loaded as the model was) or precompute_ref_log_probs=True"
                )
            # SimPO has no reference: the copy only keeps TRL from loading one, and is dropped below.
            ref_model = copy.deepcopy(model).eval()
        kwargs["compute_metrics"] = compute_metrics or compute_pairwise_accuracy
        super().__init__(model, ref_model, args, data_collator, **kwargs)
        if args.simpo:
            self.ref_model = None  # SimPO has no reference; the copy only kept TRL from loading one from disk
        match_adapter_dtype(self.model, args.bf16)
        if data_collator is None:
            self.data_collator = SoftLabelCollator(self.data_collator)
        self._objective = StudentObjective(args)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        if self.args.train_sampling_strategy == "group_by_length" and isinstance(dataset, Dataset):
            # TRL scores the reference in the dataset's order: sorted by length, its batches carry little padding.
            # Training draws its own order (`w2s_align.sampling`), so the sort costs nothing there.
            lengths = pair_lengths(dataset)
            dataset = dataset.select(sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True))
        return super()._precompute_ref_logps(dataset, name, batch_size)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        missing = [column for column in LABEL_COLUMNS if column not in self._signature_columns]
        self._signature_columns = [*self._signature_columns, *missing]

    def sequence_logps(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed completion log-probabilities and completion lengths of every row (chosen rows first)."""
        completion_mask = inputs["completion_mask"]
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        model_kwargs["use_cache"] = False
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        shift_mask = completion_mask[..., 1:]
        per_token = outputs.log_probs[:, -shift_mask.size(1) :]
        return per_token.sum(dim=1), shift_mask.sum(dim=1).clamp(min=1)

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        args = self.args
        soft_label = inputs.pop(SOFT_LABEL, None)
        conflict_label = inputs.pop(CONFLICT_LABEL, None)
        weight = self.pair_weights(inputs)
        logps, lengths = self.sequence_logps(model, inputs)
        chosen_logps, rejected_logps = logps.chunk(2)
        # The policy's own preference, as Yang et al. read it: raw log-likelihood (DPO), mean log-likelihood (SimPO).
        raw_preference = (chosen_logps - rejected_logps).detach()
        if args.simpo:
            chosen_lengths, rejected_lengths = lengths.chunk(2)
            chosen_scores = args.beta * chosen_logps / chosen_lengths
            rejected_scores = args.beta * rejected_logps / rejected_lengths
            raw_preference = (chosen_logps / chosen_lengths - rejected_logps / rejected_lengths).detach()
        else:
            if self.precompute_ref_logps:
                ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                ref_chosen, ref_rejected = self.compute_ref_log_probs(self.ref_model or self.model, inputs)
            chosen_scores = args.beta * (chosen_logps - ref_chosen)
            rejected_scores = args.beta * (rejected_logps - ref_rejected)
        logits = chosen_scores - rejected_scores
        if soft_label is None:
            soft_label = torch.ones_like(logits)
        gamma = args.simpo_gamma if args.simpo else 0.0
        loss, logs = self._objective.loss(
            logits,
            soft_label,
            self.state.global_step,
            self.state.max_steps,
            mode == "train",
            self.accelerator.gather,
            gamma,
            weight,
        )
        # SimPO's conflict keeps its margin, as in Yang et al.'s SimPO code: -log sigmoid(toward harmful - gamma).
        loss = loss + self._objective.conflict(
            logits,
            conflict_label,
            mode == "train",
            self.accelerator.gather,
            logs,
            trigger=raw_preference,
            gamma=gamma,
            weight=weight,
        )
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            gather = self.accelerator.gather
            logs["rewards/chosen"] = gather(chosen_scores.detach()).mean().item()
            logs["rewards/rejected"] = gather(rejected_scores.detach()).mean().item()
            logs["rewards/accuracies"] = logs["label_agreement"]  # pairs may be stored in either order
            logs["rewards/margins"] = gather(logits.detach()).mean().item()
            logs["logps/chosen"] = gather(chosen_logps.detach()).mean().item()
            logs["logps/rejected"] = gather(rejected_logps.detach()).mean().item()
        for key, value in logs.items():
            self._metrics[mode][key].append(value)
        return (loss, {"margins": logits.detach()}) if return_outputs else loss

    def pair_margins(self, outputs) -> torch.Tensor:
        return outputs["margins"]


__all__ = ["W2SDPOConfig", "W2SDPOTrainer"]
