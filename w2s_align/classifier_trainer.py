"""W2SClassifierTrainer: binary sequence classification on soft (weak) labels, as in Burns et al.'s main results.

TRL has no classification trainer, so this one extends transformers' [`~transformers.Trainer`] the way the W2S
reward trainer extends TRL's: each example is a text and a binary label, the model an
`AutoModelForSequenceClassification` with two labels (or one logit), and the student losses of the reward trainer
([`w2s_align.losses`]) read the classifier's logit for class 1 (`z1 - z0`) and the supervisor's probability of class 1.
With hard labels and `student_loss="xent"` the loss is transformers' own cross-entropy of a two-label classifier.

Example:

```python
>>> from datasets import Dataset
>>> from w2s_align import W2SClassifierConfig, W2SClassifierTrainer
>>> dataset = Dataset.from_dict(
...     {
...         "txt": ["Q: What do plants take in to make sugar? A: carbon dioxide", "Q: What is ice? A: a gas"],
...         "soft_label": [0.9, 0.2],  # the weak supervisor's probability that each text's label is 1
...     }
... )
>>> args = W2SClassifierConfig(output_dir="out", student_loss="logconf", report_to=[])
>>> args.student_loss, args.max_length, args.dataset_text_field
('logconf', 1024, 'txt')
>>> trainer = W2SClassifierTrainer(model="path/or/hub-id", args=args, train_dataset=dataset)  # doctest: +SKIP
>>> trainer.train()  # doctest: +SKIP
```
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from datasets import Dataset, IterableDataset
from transformers import (
    DataCollator,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging

from .cards import BURNS_2023
from .collators import SoftLabelCollator
from .losses import ClassBalanceHardening, StudentLossArguments, StudentObjective
from .mirrors import offline_copy
from .neutral_evaluation import preserved_rng_states
from .options import HARD_LABEL, SOFT_LABEL

logger = logging.get_logger(__name__)

if TYPE_CHECKING:
    from peft import PeftConfig, PeftModel

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class W2SClassifierConfig(StudentLossArguments, TrainingArguments):
    r"""
    Configuration class for the [`W2SClassifierTrainer`].

    Everything [`~transformers.TrainingArguments`] offers, with its defaults, plus the weak-to-strong student losses
    (as in [`W2SRewardConfig`]) and how texts are read. The explicit conflict (`conflict_alpha`) is a preference-pair
    feature and is refused here.

    Parameters:
        student_loss (`str`, *optional*, defaults to `"xent"`):
            How the soft labels are learned: `"xent"`, `"logconf"`, `"product"`, `"window"`, `"min_entropy"` or
            `"kl"` (see [`w2s_align.losses`]). With hard labels, `"xent"` is transformers' classification loss.
        soft_label_mode (`str`, *optional*, defaults to `"smoothing"`):
            `"smoothing"`: the soft label is the target of the cross-entropy. `"weight"`: each example takes its
            hardened label, its loss weighted by the label's confidence `max(p, 1 - p)`.
        aux_coef (`float`, *optional*, defaults to `0.5`):
            `logconf`: final weight of the student's own hardened predictions; `min_entropy`: of its entropy.
        aux_warmup_frac (`float`, *optional*, defaults to `0.2`):
            `logconf`, `product` and `min_entropy`: fraction of the optimizer steps over which that weight ramps
            from 0.
        product_alpha (`float`, *optional*, defaults to `1.0`):
            `product`: exponent of the weak probability.
        product_beta (`float`, *optional*, defaults to `1.0`):
            `product`: final exponent of the student probability.
        window_radius (`float`, *optional*, defaults to `0.15`):
            `window`: an example is learned while the student's confidence is below `0.5 + window_radius`.
        hardening_window (`int`, *optional*, defaults to `256`):
            `logconf`: how many of the student's preceding predictions the class-balance hardening ranks the batch
            among ([`~w2s_align.losses.ClassBalanceHardening`]); 0 ranks each batch alone, as the reference
            implementation does. The balance is the training set's mean soft label.
        float32_loss (`bool`, *optional*, defaults to `False`):
            Compute the loss in float32 from logits in bf16 or fp16.
        dataset_text_field (`str`, *optional*, defaults to `"txt"`):
            The column holding each example's text (the reference implementations' name), tokenized by the trainer
            when the dataset has no `input_ids`.
        max_length (`int` or `None`, *optional*, defaults to `1024`):
            Examples whose text is longer (in tokens) are dropped, as Burns et al. drop them (their `max_ctx`) and
            TRL's trainers drop over-long pairs; the number dropped is logged. `None` keeps every example whole.
        model_init_kwargs (`dict` or `None`, *optional*, defaults to `None`):
            Keyword arguments of `AutoModelForSequenceClassification.from_pretrained` when `model` is a string
            (`num_labels` defaults to 2).
    """

    hardening_window: int = field(
        default=256,
        metadata={"help": "logconf: predictions before the batch that its class-balance hardening ranks it among."},
    )
    dataset_text_field: str = field(default="txt", metadata={"help": "The column holding each example's text."})
    max_length: int | None = field(
        default=1024, metadata={"help": "Examples longer than this many tokens are dropped (None: none)."}
    )
    model_init_kwargs: dict[str, Any] | None = field(
        default=None, metadata={"help": "Keyword arguments of from_pretrained when the model is given by name."}
    )

    def __post_init__(self):
        if self.conflict_alpha:
            raise ValueError(
                "conflict_alpha is a preference-pair feature (it rewards preferring the harmful response of a pair): "
                "a classifier has no pair; leave it at 0"
            )
        if self.hardening_window < 0:
            raise ValueError(f"hardening_window must be 0 or more, got {self.hardening_window}")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length must be at least 1 or None, got {self.max_length}")
        super().__post_init__()


class W2SClassifierTrainer(Trainer):
    """
    Binary classifier trainer for weak-to-strong experiments: transformers' [`~transformers.Trainer`] with soft labels
    and the weak-to-strong student losses.

    The dataset holds a text per example (`txt`, [`W2SClassifierConfig.dataset_text_field`]) or its `input_ids`, and
    its label: `soft_label` (a supervisor's probability of class 1) or `hard_label` (the ground truth, 0 or 1). A
    training set with both trains on `soft_label`; its `hard_label` is removed first, so that the ground truth never
    reaches a student. Evaluation scores against `hard_label` where the evaluation set has it, else against the
    hardened `soft_label`.

    Logged metrics: `loss`, `label_agreement` (how often the model's class agrees with the label's, per batch),
    `soft_label_confidence` (mean `max(p, 1 - p)`), `loss_xent` (cross-entropy against the labels alone), for
    `logconf` and `min_entropy` `aux_coef`, for `window` `window_share`; evaluation adds `accuracy` over the whole
    evaluation set (beside what a `compute_metrics` returns, which receives the logits for class 1 and the labels; a
    metric of its own named `accuracy` is kept).

    Args:
        model (`str`, `PreTrainedModel` or `PeftModel`):
            A sequence-classification model with one or two labels, or its hub id or path (loaded with two labels).
        args ([`W2SClassifierConfig`], *optional*): defaults to one named after the model.
        data_collator (`DataCollator`, *optional*): defaults to padding the inputs and stacking the labels.
        train_dataset, eval_dataset: as in [`~transformers.Trainer`], in the format above.
        processing_class (`PreTrainedTokenizerBase`, *optional*): the tokenizer; loaded from `model` when a string.
        compute_metrics, callbacks, optimizers, preprocess_logits_for_metrics: as in [`~transformers.Trainer`].
        peft_config (`PeftConfig`, *optional*): a PEFT config (task `SEQ_CLS`) to train an adapter instead.
    """

    _tag_names = ["transformers", "text-classification", "w2s-align"]
    _name = "W2S Classifier"
    _paper = BURNS_2023

    def __init__(
        self,
        model: str | PreTrainedModel | PeftModel,
        args: W2SClassifierConfig | None = None,
        data_collator: DataCollator | None = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        compute_metrics: Callable[[EvalPrediction], dict] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LambdaLR | None] = (None, None),
        preprocess_logits_for_metrics: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        peft_config: PeftConfig | None = None,
    ):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = W2SClassifierConfig(f"{name.split('/')[-1]}-W2SClassifier")
        elif not isinstance(args, W2SClassifierConfig):
            raise TypeError(f"args must be a W2SClassifierConfig, got {type(args).__name__}")
        if isinstance(model, str):
            model, processing_class = self._load(model, args, processing_class)
        if processing_class is None:
            raise ValueError("processing_class (the tokenizer) is needed when the model is given as an object")
        if processing_class.pad_token is None:  # GPT-2 style tokenizers: pad with eos, as TRL's trainers do
            processing_class.pad_token = processing_class.eos_token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = processing_class.pad_token_id  # the classifier reads the last non-pad token
        if model.config.num_labels not in (1, 2):
            raise ValueError(
                f"a binary classifier needs 1 or 2 labels, the model has num_labels={model.config.num_labels}"
            )
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
        train_dataset = self._prepare(train_dataset, processing_class, args, "train", training=True)
        if isinstance(eval_dataset, dict):
            eval_dataset = {k: self._prepare(v, processing_class, args, k) for k, v in eval_dataset.items()}
        else:
            eval_dataset = self._prepare(eval_dataset, processing_class, args, "eval")
        if data_collator is None:
            data_collator = SoftLabelCollator(DataCollatorWithPadding(processing_class), (SOFT_LABEL, HARD_LABEL))
        self._user_metrics = compute_metrics
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=self._metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        )
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags(self._tag_names)
        hardening = None
        if args.student_loss == "logconf" and isinstance(train_dataset, Dataset):
            hardening = ClassBalanceHardening(self._positive_share(train_dataset), args.hardening_window)
        self._objective = StudentObjective(args, hardening)
        self._logs: dict[str, list[float]] = {}

    @staticmethod
    def _load(model_id: str, args: W2SClassifierConfig, tokenizer):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = offline_copy(model_id) or model_id  # an installed copy of a hub id, as the reward trainer loads it
        kwargs = {"num_labels": 2, **(args.model_init_kwargs or {})}
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
        model.config._name_or_path = model_id
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(path, revision=kwargs.get("revision"))
        return model, tokenizer

    @staticmethod
    def _prepare(dataset, tokenizer, args: W2SClassifierConfig, name: str, training: bool = False):
        """Tokenized, over-long examples dropped; a training set's `hard_label` removed beside a `soft_label`."""
        if dataset is None:
            return None
        columns = dataset.column_names or []
        if SOFT_LABEL not in columns and HARD_LABEL not in columns:
            raise ValueError(f"the {name} dataset needs a {SOFT_LABEL!r} or {HARD_LABEL!r} column, has {columns}")
        if training and SOFT_LABEL in columns and HARD_LABEL in columns:
            dataset = dataset.remove_columns(HARD_LABEL)  # the ground truth never reaches a student's training
        if "input_ids" not in columns:
            field_name = args.dataset_text_field
            if field_name not in columns:
                raise ValueError(
                    f"the {name} dataset has neither `input_ids` nor the text column {field_name!r} "
                    f"(dataset_text_field); its columns: {columns}"
                )
            dataset = dataset.map(
                lambda row: tokenizer(row[field_name]), remove_columns=[field_name], desc=f"Tokenizing {name}"
            )
        if args.max_length is not None and isinstance(dataset, Dataset):
            before = dataset.num_rows
            dataset = dataset.filter(lambda row: len(row["input_ids"]) <= args.max_length, desc=f"Length of {name}")
            if dataset.num_rows < before:
                dropped = before - dataset.num_rows
                logger.warning(f"{name}: dropped {dropped} of {before} examples over {args.max_length} tokens")
        return dataset

    @staticmethod
    def _positive_share(dataset: Dataset) -> float:
        """The class balance `logconf` hardens to: the mean soft label of the training set (the ground truth's mean
        without one: a ceiling trained on it)."""
        column = SOFT_LABEL if SOFT_LABEL in dataset.column_names else HARD_LABEL
        return float(np.mean(np.asarray(dataset[column], dtype=np.float64)))

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = [*MODEL_INPUTS, SOFT_LABEL, HARD_LABEL]

    def class_logit(self, logits: torch.Tensor) -> torch.Tensor:
        """The logit of class 1 against class 0: `z1 - z0` for two labels, the logit itself for one."""
        return logits[:, 1] - logits[:, 0] if logits.shape[-1] == 2 else logits.squeeze(-1)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        soft_label = inputs.pop(SOFT_LABEL, None)
        hard_label = inputs.pop(HARD_LABEL, None)
        labels = soft_label if soft_label is not None else hard_label
        if labels is None:
            raise ValueError(f"every batch needs a {SOFT_LABEL!r} or {HARD_LABEL!r}")
        outputs = model(**inputs)
        logit = self.class_logit(outputs.logits)
        training = model.training
        loss, logs = self._objective.loss(
            logit, labels, self.state.global_step, self.state.max_steps, training, self.accelerator.gather
        )
        if training:
            for key, value in logs.items():
                self._logs.setdefault(key, []).append(value)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """The loss, each example's logit for class 1, and its reference label (`hard_label` where given)."""
        inputs = self._prepare_inputs(inputs)
        reference = inputs.get(HARD_LABEL, inputs.get(SOFT_LABEL))
        with torch.no_grad():
            loss, outputs = self.compute_loss(model, dict(inputs), return_outputs=True)
        if prediction_loss_only:
            return loss.detach(), None, None
        return loss.detach(), self.class_logit(outputs.logits).detach(), reference

    def _metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        """`accuracy` (the model's class against the reference label's, over the whole set) and the user's metrics,
        which keep their own `accuracy`."""
        logit = np.asarray(prediction.predictions, dtype=np.float64)
        reference = np.asarray(prediction.label_ids, dtype=np.float64)
        metrics = {"accuracy": float(np.mean((logit > 0) == (reference > 0.5)))}
        if self._user_metrics is not None:
            metrics.update(self._user_metrics(prediction))
        return metrics

    def evaluate(self, *args, **kwargs):
        with preserved_rng_states():  # evaluating changes no result (see w2s_align.neutral_evaluation)
            return super().evaluate(*args, **kwargs)

    def create_model_card(
        self, model_name: str | None = None, dataset_name: str | None = None, tags: str | list[str] | None = None
    ) -> None:
        """A model card in `output_dir/README.md` as TRL's trainers write theirs (the base model, the trainer and
        its paper, the framework versions), under TRL's signature; transformers' own card lists no paper."""
        if not self.is_world_process_zero():
            return
        from trl.trainer.utils import generate_model_card, get_comet_experiment_url, get_config_model_id

        base_model = get_config_model_id(self.model.config)
        wandb_run = getattr(sys.modules.get("wandb"), "run", None)  # a run the W&B integration started
        card = generate_model_card(
            base_model=base_model if base_model and not os.path.isdir(base_model) else None,
            model_name=model_name,
            hub_model_id=self.hub_model_id,
            dataset_name=dataset_name,
            tags=sorted({*([tags] if isinstance(tags, str) else tags or []), *self._tag_names}),
            wandb_url=None if wandb_run is None else wandb_run.url,
            trackio_url=None,
            trainer_name=self._name,
            trainer_citation=self._paper.get("citation"),
            paper_title=self._paper.get("title"),
            paper_id=self._paper.get("id"),
            comet_url=get_comet_experiment_url(),
        )
        card.save(os.path.join(self.args.output_dir, "README.md"))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Transformers' logs with the mean of each weak-to-strong metric since the last log (training only)."""
        if "loss" in logs:
            logs = {**logs, **{key: float(np.mean(values)) for key, values in self._logs.items()}}
            self._logs = {}
        super().log(logs, start_time)


__all__ = ["W2SClassifierConfig", "W2SClassifierTrainer"]
