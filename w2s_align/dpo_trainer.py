"""W2SDPOTrainer: TRL's DPOTrainer on pairs labelled by a weak supervisor, with SimPO and the explicit conflict.

The weak supervisor's confidence is kept as a soft label (probability that `chosen` is better): as per-pair label
smoothing (`soft_label_mode="smoothing"`, the default) or as a weight on a pair oriented by the label
(`soft_label_mode="weight"`). The student losses (`xent`, `logconf`, `product`, ...) are those of the reward trainer,
applied to the policy's preference logit:

- DPO (`loss_type=["sigmoid"]`, TRL's default): `beta * ((log pi(y_c) - log ref(y_c)) - (log pi(y_r) - log ref(y_r)))`
  (each log-ratio replaced by its score under `f_divergence_type`);
- SimPO (`loss_type=["simpo"]`, this trainer's own): `beta * (log pi(y_c) / |y_c| - log pi(y_r) / |y_r|)`, with the
  target margin `simpo_gamma` and no reference model.

TRL's other per-pair losses (`hinge`, `ipo`, `robust`, ..., and their weighted combinations) weigh a soft label as
[`w2s_align.preference_losses`] defines; the preference logit above still gives the student loss its own prediction.

Example:

```python
>>> from w2s_align import W2SDPOConfig, W2SDPOTrainer
>>> args = W2SDPOConfig(output_dir="student", student_loss="logconf", beta=0.1, report_to=[])  # doctest: +SKIP
>>> trainer = W2SDPOTrainer(model=policy, args=args, train_dataset=weakly_labelled_pairs)  # doctest: +SKIP
>>> trainer.train()  # doctest: +SKIP
```
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from accelerate.utils import is_peft_model
from datasets import Dataset, IterableDataset
from transformers import (
    DataCollator,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProcessorMixin,
    TrainerCallback,
)
from trl import DPOConfig, DPOTrainer

from .cards import BURNS_2023, YANG_2025, cite
from .collators import SoftLabelCollator
from .device import DeviceDefaults, match_adapter_dtype
from .distributed import keep_used_conversions
from .last_batch import LastBatchWeights
from .losses import StudentLossArguments, StudentObjective
from .neutral_evaluation import NeutralEvaluation
from .options import CONFLICT_LABEL, LABEL_COLUMNS, SOFT_LABEL
from .preference_losses import (
    PAIR_LOSSES,
    UNPAIRED_LOSSES,
    Side,
    batch_loss,
    f_divergence_score,
    pair_loss,
    refuse_soft_labels,
)
from .prompts import with_explicit_prompts
from .sampling import LengthGroupedTraining, LengthGroupingArguments, length_order, pair_lengths

if TYPE_CHECKING:
    from peft import PeftConfig, PeftModel
    from transformers import BitsAndBytesConfig

_NON_MODEL_KEYS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}


@dataclass
class W2SDPOConfig(StudentLossArguments, DeviceDefaults, LengthGroupingArguments, DPOConfig):
    r"""
    Configuration class for the [`W2SDPOTrainer`].

    Everything [`~trl.DPOConfig`] offers, plus the weak-to-strong student losses of [`W2SRewardConfig`]
    (`student_loss`, `soft_label_mode`, `aux_coef`, `aux_warmup_frac`, `product_alpha`, `product_beta`,
    `window_radius`, `conflict_alpha`, `float32_loss`) and SimPO. TRL's defaults (random batches, TRL's precision and
    checkpointing; a TRL `DPOConfig` given to the trainer is converted), as in [`W2SRewardConfig`];
    docs/trl_differences.md lists the deliberate differences.

    Parameters:
        loss_type (`list[str]`, *optional*, defaults to `["sigmoid"]`):
            TRL's DPO losses, combined by `loss_weights` as in TRL (a single loss weighed too); or `["simpo"]` alone
            (SimPO: length-normalised log-likelihood, no reference model; the SimPO paper uses `beta=2.0`,
            `simpo_gamma=1.0`). A soft label weighs the losses that have a per-pair form
            ([`~w2s_align.preference_losses.PAIR_LOSSES`]). `aot`, `aot_unpaired` and `sft` (and MPO, which
            combines `sft`) have none: they take hard labels (0 or 1) only, with `student_loss="xent"`, and a soft
            label is refused when it is given.
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
        if self.simpo:
            if self.loss_type != ["simpo"]:
                raise ValueError(f"SimPO is a loss of its own, not a term to combine: loss_type {self.loss_type}")
            # SimPO is this trainer's loss, not TRL's: TRL's options that reshape DPO's log-ratios do not reach it.
            dpo_only = {
                "precompute_ref_log_probs": self.precompute_ref_log_probs,
                "ld_alpha": self.ld_alpha is not None,
                "f_divergence_type": self.f_divergence_type != "reverse_kl",
                "use_weighting": self.use_weighting,
            }
            for name, used in dpo_only.items():
                if used:
                    raise ValueError(f"SimPO (loss_type ['simpo']) uses no reference model: {name} does not apply")
            if self.student_loss == "kl":
                raise ValueError(
                    "student_loss 'kl' has no margin for SimPO's simpo_gamma: use it with loss_type sigmoid"
                )
            return
        for loss in self.loss_type:
            if loss not in PAIR_LOSSES and loss not in UNPAIRED_LOSSES:
                raise ValueError(f"unknown loss_type {loss!r}: one of {[*PAIR_LOSSES, *UNPAIRED_LOSSES, 'simpo']}")
            if loss in UNPAIRED_LOSSES and self.student_loss != "xent":
                # The other student losses make each pair's target soft, or reshape each pair's loss.
                raise ValueError(
                    f"student_loss {self.student_loss!r} weighs each pair's loss, which loss_type {loss!r} does not "
                    f"have: {UNPAIRED_LOSSES[loss]}. Use it with student_loss 'xent' and hard labels"
                )
        if self.student_loss == "kl" and self.loss_type != ["sigmoid"]:
            raise ValueError(
                "student_loss 'kl' is a divergence of the sigmoid preference probability: use it with loss_type "
                f"['sigmoid'], not {self.loss_type}"
            )

    @property
    def simpo(self) -> bool:
        return "simpo" in self.loss_type

    @property
    def plain_sigmoid(self) -> bool:
        """DPO's own loss: the student loss's cross-entropy of the preference logit is the whole loss (times its
        `loss_weights`)."""
        return self.loss_type == ["sigmoid"] and not self.use_weighting


class W2SDPOTrainer(NeutralEvaluation, LengthGroupedTraining, LastBatchWeights, DPOTrainer):
    """
    DPO/SimPO trainer for weak-to-strong experiments: TRL's [`~trl.DPOTrainer`] with soft (weak) labels.

    The training dataset takes the formats `DPOTrainer` takes (`prompt`, `chosen`, `rejected`; conversational or
    standard), plus an optional `soft_label` column (probability that `chosen` is better, 1.0 when absent). Arguments
    are those of [`~trl.DPOTrainer`], in its order; `args` may be TRL's [`~trl.DPOConfig`], converted to a
    [`W2SDPOConfig`] with the weak-to-strong fields at their defaults.

    The reference model is always the starting policy. When `ref_model` is not given, TRL reloads the reference from
    `model.config._name_or_path`, which fails for a model built in memory and silently uses the on-disk weights for a
    model changed in memory; this trainer uses a frozen copy of the `model` it is given instead (with PEFT, the
    adapter-free base model; with `precompute_ref_log_probs`, the model before training). SimPO keeps no reference.

    Logged metrics: TRL's, with TRL's meanings (`rewards/chosen`, `rewards/rejected`, `rewards/accuracies`,
    `rewards/margins`: the implicit rewards `beta * log-ratio`, or SimPO's scaled average log-likelihoods, of the
    response stored first and second, whatever the label says; `logps/*`, `logits/*`, `entropy`,
    `mean_token_accuracy`, `num_tokens`, `aux_loss` for MoE models), and the weak-to-strong ones under their own
    names: `label_agreement` (the preference logit's sign agrees with the soft label's side), `soft_label_confidence`,
    `loss_xent`, `aux_coef` (logconf, min_entropy), `window_share` (window), `loss_conflict` (explicit conflict).
    Evaluation predicts each pair's margin (the preference logit: `beta` times the difference of the responses'
    divergence scores, or SimPO's scaled average log-likelihood difference) with its label as the reference, and
    `eval_accuracy` (agreement with the labels over the whole `eval_dataset`) is computed through the `evaluate`
    module `pairwise_accuracy` (see [`w2s_align.evaluate_metrics`]), beside what a `compute_metrics` returns (it
    receives TRL's predictions).
    """

    _tag_names = ["trl", "dpo", "w2s-align"]
    _name = "W2S DPO"
    _paper = cite(YANG_2025, BURNS_2023)

    def __init__(
        self,
        model: str | PreTrainedModel | PeftModel,
        ref_model: PreTrainedModel | None = None,
        args: W2SDPOConfig | DPOConfig | None = None,
        data_collator: DataCollator | None = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Dataset | IterableDataset | dict[str, Dataset | IterableDataset] | None = None,
        processing_class: PreTrainedTokenizerBase | ProcessorMixin | None = None,
        compute_metrics: Callable[[EvalPrediction], dict] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        quantization_config: BitsAndBytesConfig | None = None,
        peft_config: PeftConfig | None = None,
    ):
        args = W2SDPOConfig.for_trainer(args, model)
        # Implicit prompts split at a word boundary, as the pipeline splits them (TRL cuts mid-word; see prompts.py).
        train_dataset = with_explicit_prompts(train_dataset)
        if isinstance(eval_dataset, dict):
            eval_dataset = {name: with_explicit_prompts(dataset) for name, dataset in eval_dataset.items()}
        else:
            eval_dataset = with_explicit_prompts(eval_dataset)
        # A soft label with a loss that has none to weigh is refused before the datasets are tokenized.
        evaluated = eval_dataset.items() if isinstance(eval_dataset, dict) else [("eval", eval_dataset)]
        for name, dataset in [("train", train_dataset), *evaluated]:
            if isinstance(dataset, Dataset) and SOFT_LABEL in dataset.column_names:
                refuse_soft_labels(args.loss_type, dataset[SOFT_LABEL], f"the {name} dataset")
        in_memory = isinstance(model, PreTrainedModel) and not is_peft_model(model)
        needs_copy = ref_model is None and in_memory and peft_config is None
        if needs_copy and (args.simpo or not args.precompute_ref_log_probs):
            from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

            if is_deepspeed_zero3_enabled() and not args.simpo:
                raise ValueError(
                    "under DeepSpeed ZeRO-3 the model's parameters are partitioned, so a copy of it as the reference "
                    "would be empty: pass ref_model= (loaded as the model was) or precompute_ref_log_probs=True"
                )
            # SimPO has no reference: the copy only keeps TRL from loading one, and is dropped below.
            ref_model = copy.deepcopy(model).eval()
        super().__init__(
            model,
            ref_model,
            args,
            data_collator,
            train_dataset,
            eval_dataset,
            processing_class,
            compute_metrics,
            callbacks,
            optimizers,
            quantization_config,
            peft_config,
        )
        if args.simpo:
            self.ref_model = None  # SimPO has no reference; the copy only kept TRL from loading one from disk
        keep_used_conversions(self.model)  # saved under ZeRO-3 with the names it was loaded with
        match_adapter_dtype(self.model, args.bf16)
        if data_collator is None:
            self.data_collator = SoftLabelCollator(self.data_collator)
        self._objective = StudentObjective(args)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        if self.args.train_sampling_strategy != "group_by_length" or not isinstance(dataset, Dataset):
            return super()._precompute_ref_logps(dataset, name, batch_size)
        # Scored longest first (little padding), returned in the dataset's order, as TRL returns it.
        order = length_order(pair_lengths(dataset))
        scored = super()._precompute_ref_logps(dataset.select(order), name, batch_size)
        return scored.select(np.argsort(order))

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        missing = [column for column in LABEL_COLUMNS if column not in self._signature_columns]
        self._signature_columns = [*self._signature_columns, *missing]

    def completion_logps(self, per_token: torch.Tensor, shift_mask: torch.Tensor) -> torch.Tensor:
        """Each row's completion log-probability: the sum of its tokens', or with `ld_alpha` (LD-DPO) the tokens past
        the pair's shorter response weighted by `ld_alpha`, as TRL weighs the reference's (chosen rows first)."""
        if self.ld_alpha is None:
            return per_token.sum(dim=1)
        positions = shift_mask.cumsum(dim=1)
        shared = torch.minimum(*shift_mask.sum(dim=1).chunk(2)).repeat(2).unsqueeze(1)
        shared_logps = (per_token * ((positions > 0) & (positions <= shared))).sum(dim=1)
        return shared_logps + self.ld_alpha * (per_token * (positions > shared)).sum(dim=1)

    def wpo_weights(self, per_token, shift_mask, outputs) -> torch.Tensor:
        """WPO's weight of each pair (Eq. 2, with `use_weighting`): the product of both responses' length-normalised
        probabilities, the same either way round."""
        with torch.no_grad():
            aligned = (per_token - outputs.log_sum_sq_probs[:, -shift_mask.size(1) :]) * shift_mask
            weights = torch.exp(aligned.sum(dim=1) / shift_mask.sum(dim=1).clamp_min(1))
        chosen_weights, rejected_weights = weights.chunk(2)
        return chosen_weights * rejected_weights

    def oriented_losses(self, chosen: Side, rejected: Side, wpo: torch.Tensor | None):
        """Each pair's loss (TRL's per-pair `loss_type`s weighted by `loss_weights`, times WPO's weight `wpo`) if
        `chosen` is the better response, and if `rejected` is."""
        args = self.args
        first = second = torch.zeros_like(chosen.score)
        settings = (args.beta, args.label_smoothing, args.discopop_tau)
        for loss_type, loss_weight in zip(self.loss_types, self.loss_weights, strict=True):
            if loss_type in UNPAIRED_LOSSES:
                continue  # `batch_losses`
            first = first + loss_weight * pair_loss(loss_type, chosen, rejected, *settings)
            second = second + loss_weight * pair_loss(loss_type, rejected, chosen, *settings)
        if wpo is not None:
            first, second = first * wpo, second * wpo
        return first, second

    def batch_losses(self, chosen: Side, rejected: Side, soft_label, per_token, shift_mask, wpo, weight):
        """TRL's losses of the whole batch (`aot`, `aot_unpaired`, `sft`) weighted by `loss_weights`, each pair read
        by its hard label; None without them. A soft label is refused: it has no pair's loss to weigh."""
        weighted = zip(self.loss_types, self.loss_weights, strict=True)
        unpaired = [(loss, loss_weight) for loss, loss_weight in weighted if loss in UNPAIRED_LOSSES]
        if not unpaired:
            return None
        refuse_soft_labels(self.loss_types, soft_label, "a batch")
        first = soft_label.to(chosen.score.device) > 0.5
        real = torch.ones_like(first) if weight is None else weight > 0  # the filled last batch: its real pairs
        if weight is not None and not real.any():
            return None

        def pick(a: torch.Tensor, b: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
            return torch.where(side.view(-1, *[1] * (a.dim() - 1)), a, b)[real]

        fields = ("score", "logratio", "length", "logps", "ref_logps")
        better = Side(**{f: pick(getattr(chosen, f), getattr(rejected, f), first) for f in fields})
        worse = Side(**{f: pick(getattr(rejected, f), getattr(chosen, f), first) for f in fields})
        chosen_rows = [tensor.chunk(2) for tensor in (per_token, shift_mask)]
        better_tokens = tuple(pick(c, r, first) for c, r in chosen_rows)
        total = 0.0
        for loss_type, loss_weight in unpaired:
            term = batch_loss(loss_type, better, worse, self.args.beta, self.args.label_smoothing, better_tokens)
            if wpo is not None:  # TRL weighs sft's batch mean by each pair's WPO weight: their mean (aot refuses it)
                term = term * wpo[real].mean()
            total = total + loss_weight * term
        # The pairs' share of the step, as `reduce_pairs` gives the per-pair losses on a filled last batch.
        return total if weight is None else total * weight[real].sum()

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        args = self.args
        soft_label = inputs.pop(SOFT_LABEL, None)
        conflict_label = inputs.pop(CONFLICT_LABEL, None)
        weight = self.pair_weights(inputs)
        completion_mask = inputs["completion_mask"]
        shift_mask = completion_mask[..., 1:]
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        model_kwargs["use_cache"] = False
        if self.aux_loss_enabled:  # MoE: the router's load-balancing loss joins the loss, as in TRL
            model_kwargs["output_router_logits"] = True
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        per_token = outputs.log_probs[:, -shift_mask.size(1) :]
        logps = self.completion_logps(per_token, shift_mask)
        chosen_logps, rejected_logps = logps.chunk(2)
        # The policy's own preference, as Yang et al. read it: raw log-likelihood (DPO), mean log-likelihood (SimPO).
        raw_preference = (chosen_logps - rejected_logps).detach()
        oriented = None
        if args.simpo:
            chosen_lengths, rejected_lengths = shift_mask.sum(dim=1).clamp(min=1).chunk(2)
            chosen_rewards = args.beta * chosen_logps / chosen_lengths
            rejected_rewards = args.beta * rejected_logps / rejected_lengths
            raw_preference = (chosen_logps / chosen_lengths - rejected_logps / rejected_lengths).detach()
            logits = chosen_rewards - rejected_rewards
        else:
            chosen, rejected = self._sides(inputs, chosen_logps, rejected_logps)
            # TRL's expression, to the rounding: beta times the difference.
            logits = args.beta * (chosen.score - rejected.score)
            chosen_rewards, rejected_rewards = args.beta * chosen.logratio, args.beta * rejected.logratio
        if soft_label is None:
            soft_label = torch.ones_like(logits)
        batch_term = None
        if not args.simpo and not args.plain_sigmoid:
            wpo = self.wpo_weights(per_token, shift_mask, outputs) if self.use_weighting else None
            oriented = self.oriented_losses(chosen, rejected, wpo)
            batch_term = self.batch_losses(chosen, rejected, soft_label, per_token, shift_mask, wpo, weight)
        gamma = args.simpo_gamma if args.simpo else 0.0
        training, gather = mode == "train", self.accelerator.gather
        step, max_steps = self.state.global_step, self.state.max_steps
        loss, logs = self._objective.loss(
            logits, soft_label, step, max_steps, training, gather, gamma, weight, oriented
        )
        if args.simpo or args.plain_sigmoid:
            loss = loss * self.loss_weights[0]  # TRL weighs a single loss too
        if batch_term is not None:
            loss = loss + batch_term
        # SimPO's conflict keeps its margin, as in Yang et al.'s SimPO code: -log sigmoid(toward harmful - gamma).
        conflict = self._objective.conflict(
            logits, conflict_label, training, gather, logs, trigger=raw_preference, gamma=gamma, weight=weight
        )
        loss = loss + conflict
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss
            logs["aux_loss"] = self.accelerator.gather_for_metrics(outputs.aux_loss.detach()).mean().item()
        if training:
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            logs.update(self.token_metrics(outputs, shift_mask))
            # TRL's meanings: "chosen" is the response stored first, whatever the (weak) label says of it.
            for name, value in (
                ("rewards/chosen", chosen_rewards),
                ("rewards/rejected", rejected_rewards),
                ("rewards/accuracies", (chosen_rewards > rejected_rewards).float()),
                ("rewards/margins", chosen_rewards - rejected_rewards),
                ("logps/chosen", chosen_logps),
                ("logps/rejected", rejected_logps),
            ):
                logs[name] = gather(value.detach()).mean().item()
        for key, value in logs.items():
            self._metrics[mode][key].append(value)
        return (loss, {"margins": logits.detach()}) if return_outputs else loss

    def _sides(self, inputs, chosen_logps: torch.Tensor, rejected_logps: torch.Tensor) -> tuple[Side, Side]:
        """Each response's log-ratio to the reference (precomputed, or from the reference model now) and its
        divergence score."""
        args = self.args
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            # `is not None`: a compiled reference (`torch_compile=True`) has no truth value
            reference = self.ref_model if self.ref_model is not None else self.model
            ref_chosen, ref_rejected = self.compute_ref_log_probs(reference, inputs)
        chosen_lengths, rejected_lengths = inputs["completion_mask"].sum(dim=1).chunk(2)
        sides = []
        for policy_logps, ref_logps, length in (
            (chosen_logps, ref_chosen, chosen_lengths),
            (rejected_logps, ref_rejected, rejected_lengths),
        ):
            ratio = policy_logps - ref_logps
            score = f_divergence_score(ratio, args.f_divergence_type, args.f_alpha_divergence_coef)
            sides.append(Side(score, ratio, length, policy_logps, ref_logps))
        return sides[0], sides[1]

    def token_metrics(self, outputs, shift_mask: torch.Tensor) -> dict[str, float]:
        """TRL's token-level metrics of a batch: `entropy` over the completions, `logits/chosen` and `logits/rejected`
        (mean logit per completion token), `mean_token_accuracy` (the chosen completions' tokens predicted top-1)."""
        tokens = shift_mask.size(1)

        def total(values: torch.Tensor) -> float:
            return self.accelerator.gather_for_metrics(values.sum()).sum().item()

        def ratio(numerator: float, denominator: float) -> float:
            return numerator / denominator if denominator > 0 else 0.0

        mask = shift_mask.bool()
        chosen_mask, rejected_mask = mask.chunk(2)
        chosen_logits, rejected_logits = outputs.mean_logits[:, -tokens:].chunk(2)
        chosen_top1, _ = outputs.is_top1[:, -tokens:].chunk(2)
        chosen_tokens, rejected_tokens = total(chosen_mask), total(rejected_mask)
        return {
            "entropy": ratio(total(outputs.entropy[:, -tokens:] * mask), total(mask)),
            "logits/chosen": ratio(total(chosen_logits[chosen_mask]), chosen_tokens),
            "logits/rejected": ratio(total(rejected_logits[rejected_mask]), rejected_tokens),
            "mean_token_accuracy": ratio(total(chosen_top1 & chosen_mask), chosen_tokens),
        }

    def pair_margins(self, outputs) -> torch.Tensor:
        return outputs["margins"]


__all__ = ["W2SDPOConfig", "W2SDPOTrainer"]
