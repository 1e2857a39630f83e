"""Binary classifiers as pipeline stages (`task: classify`), as in Burns et al.'s main results: train a rung on
examples (the ground truth, or a teacher's soft labels), label examples, predict the test split.

Examples arrive as text (`id`, `txt`, `gt_label`, optional `soft_label`; [`w2s_align.classification_data`]); this task
tokenizes them with the rung's tokenizer (a long text loses its start, no example is dropped), trains a
`W2SClassifierTrainer` on the rung as a two-label classifier, and scores examples with the length-sorted batched
scorer of `w2s_align.labeling` (the logit of class 1 against class 0). A soft label is the model's probability of
class 1; a prediction's `prob_chosen` the probability it puts on the true class
([`w2s_align.classifier_predictions`]), so the reports read a classifier as they read a reward model. The trainer is
imported when a stage trains.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from .cache import StageCache
from .classification_sources import SOURCES
from .classifier_predictions import predict_examples
from .data import hub_dataset_id
from .device import default_device
from .distributed import barrier, whole_weights
from .labeling import score_sequences
from .models import load_classifier, tokenize_texts
from .options import PAIR_SOURCES, SOFT_LABEL
from .recipe import DataConfig, Recipe, RungConfig
from .task_interface import Task
from .training import TrainJob, fit, hold_out, lora_config, record, trainable


def classification_dataset_id(config: DataConfig) -> str | None:
    """The Hub id of the dataset a classification run's examples come from, for model cards: a pair source's (see
    [`w2s_align.data.hub_dataset_id`]), `data.path` when it names a hub dataset, else the task's own; None for local
    files and generated examples."""
    if config.source in PAIR_SOURCES:
        return hub_dataset_id(config)
    if config.path and not Path(config.path).expanduser().exists():
        return config.path
    source = SOURCES.get(config.source)
    return None if source is None or config.path else source.path


class ClassifyTask(Task):
    """Trains and applies binary classifiers for the pipeline (`task: classify`)."""

    name = "classify"

    @classmethod
    def config_class(cls) -> type:
        from .classifier_trainer import W2SClassifierConfig

        return W2SClassifierConfig

    def __init__(self, recipe: Recipe, cache: StageCache, log: Callable[[str], None] = print):
        super().__init__(recipe, cache, log)
        self._token_ids: dict[tuple, dict[str, list[int]]] = {}

    def tokenized(self, rung: RungConfig, rows: Dataset) -> Dataset:
        """`rows` with `input_ids` for this rung: each text tokenized once per tokenizer and run."""
        memo = self._token_ids.setdefault((rung.model, rung.revision, rung.training.max_length), {})
        return tokenize_texts(rows, self.tokenizer(rung), rung.training.max_length, memo)

    def check_length(self, rung: RungConfig, pairs: Dataset, sample: int = 200) -> None:
        """Say how many of the first `sample` examples the rung's `max_length` cuts (they lose their start; nothing
        is dropped, so every model is scored on every test example)."""
        rows = pairs.select(range(min(sample, pairs.num_rows)))
        lengths = [len(ids) for ids in self.tokenizer(rung)(list(rows["txt"]))["input_ids"]]
        cut = sum(length > rung.training.max_length for length in lengths)
        if cut:
            self.log(
                f"ladder rung {rung.name!r}: training.max_length is {rung.training.max_length} tokens, which cuts the "
                f"start of {cut} of the first {rows.num_rows} examples"
            )

    def train(self, job: TrainJob) -> dict[str, Any]:
        """Train a classifier on the job's examples (less the validation examples the rung holds out), save it
        (`model/`), its log and its test predictions in the job's stage directory."""
        from transformers import set_seed

        from .classifier_trainer import W2SClassifierConfig, W2SClassifierTrainer

        stage_dir, rung, rows, seed = job.stage_dir, job.rung, job.pairs, job.seed
        set_seed(seed)
        model = trainable(load_classifier(rung), rung)
        tokenizer = self.tokenizer(rung)
        settings = rung.training
        # Texts are tokenized (and cut, never dropped) here, so the trainer's length filter is off; the soft label
        # is the only label a model trains on (a ceiling's is the ground truth), never the `gt_label` column.
        args = W2SClassifierConfig(**job.trainer_kwargs(self.recipe.loss), max_length=None)
        columns = ["input_ids", SOFT_LABEL]
        rows, validation = hold_out(rows, settings.validation_fraction, seed)
        trainer = W2SClassifierTrainer(
            model=model,
            args=args,
            train_dataset=self.tokenized(rung, rows).select_columns(columns),
            eval_dataset=None if validation is None else self.tokenized(rung, validation).select_columns(columns),
            processing_class=tokenizer,
            peft_config=lora_config(settings, "SEQ_CLS"),
        )
        dataset = classification_dataset_id(self.recipe.data)
        trained = fit(trainer, stage_dir, self.log, rung, job.ground_truth, dataset)
        del trainer, model
        gc.collect()
        barrier()
        with whole_weights():  # score with the saved model, whole on every process, whatever sharding training used
            model = load_classifier(rung, path=str(stage_dir / "model")).to(default_device())
        test = self.tokenized(rung, job.test)
        predictions = predict_examples(model, test, tokenizer.pad_token_id, settings.eval_batch_size)
        return record(predictions, stage_dir, trained)

    def label(self, rung: RungConfig, stage_dir: Path, labeler_id: str, pairs: Dataset) -> Dataset:
        """`pairs` (examples) with the `soft_label` (probability of class 1) of the classifier trained in
        `stage_dir`, and a `labeler` column."""
        with whole_weights():
            model = load_classifier(rung, path=str(stage_dir / "model")).to(default_device())
        tokenized = self.tokenized(rung, pairs)
        logits = score_sequences(model, list(tokenized["input_ids"]), self.tokenizer(rung).pad_token_id,
                                 rung.training.eval_batch_size)  # fmt: skip
        soft = (1 / (1 + np.exp(-logits.astype(np.float64)))).tolist()
        return pairs.add_column(SOFT_LABEL, soft).add_column("labeler", [labeler_id] * pairs.num_rows)
