"""The interface of a task of the pipeline ([`Task`]), which every implementation subclasses: what a rung of a ladder
learns, how it trains and labels. The tasks are registered by name in [`w2s_align.tasks`], which names the
implementations without importing them (so an implementation never imports the registry).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import W2SInputError, first_line
from .recipe import Recipe, RungConfig

if TYPE_CHECKING:
    from datasets import Dataset

    from .cache import StageCache
    from .tracking import TrackerRun
    from .training import TrainJob


class Task(ABC):
    """A task of the pipeline. Subclasses set `name` (their [`~w2s_align.tasks.TaskInfo`] is
    `w2s_align.tasks.REGISTRY[name]`), and implement
    `config_class`, `train` and `label`.

    Args:
        recipe ([`Recipe`]): the run's recipe.
        cache ([`StageCache`]): the run's stages, for stages the task keeps for itself (e.g. SFT models).
        log (`Callable[[str], None]`, *optional*, defaults to `print`): one line per step.
    """

    name: ClassVar[str]

    def __init__(self, recipe: Recipe, cache: StageCache, log: Callable[[str], None] = print):
        self.recipe = recipe
        self.cache = cache
        self.log = log
        self._tokenizers: dict[str, Any] = {}
        self._plain_rungs: set[str] = set()  # rungs told that they read conversations as plain text

    @classmethod
    @abstractmethod
    def config_class(cls) -> type:
        """The trainer config the task builds (`W2SRewardConfig`, `W2SDPOConfig`)."""

    @classmethod
    def check(cls, recipe: Recipe) -> None:
        """Stop on a rung's `trainer_kwargs` entry that is not a field of `config_class` (the recipe's checks have
        refused the fields the pipeline or the `tracking` or `hub` block sets), or a value the config refuses."""
        config_class = cls.config_class()
        defaults = {field.name: field.default for field in dataclasses.fields(config_class)}
        for rung in recipe.ladder:
            for key, value in rung.training.trainer_kwargs.items():
                if key not in defaults:
                    reason = f"is not a {config_class.__name__} field"
                elif _wrong_kind(defaults[key], value):
                    kind = "true or false" if isinstance(defaults[key], bool) else "a number"
                    reason = f"must be {kind}, got {value!r}"
                else:
                    continue
                raise W2SInputError(f"ladder rung {rung.name!r}: training.trainer_kwargs.{key} {reason}")
        cls._check_config(recipe, config_class)

    @classmethod
    def _check_config(cls, recipe: Recipe, config_class: type) -> None:
        """Build each rung's trainer config as its stages will (without trackers, checked on their own), so that a
        value the config refuses (an unknown scheduler, a `trainer_kwargs` value of the wrong type) stops the run
        before training."""
        from .tracking import Trackers
        from .training import trainer_kwargs

        tracker = Trackers.of(recipe.tracking, recipe.name, recipe.run_dir).run("check", 0)
        for rung in recipe.ladder:
            for method in recipe.methods_used:
                kwargs = trainer_kwargs(rung.training, recipe.loss, recipe.run_dir, 0, method, 0.0, tracker)
                try:
                    config_class(**{**kwargs, "report_to": []})
                except (ValueError, TypeError) as error:
                    reason = first_line(error)
                    raise W2SInputError(
                        f"ladder rung {rung.name!r}: {config_class.__name__} refuses its training settings: {reason}"
                    ) from None

    def tokenizer(self, rung: RungConfig):
        """The rung's tokenizer, loaded once per task."""
        # Imported with the first model, not with the recipe.
        from .models import load_tokenizer, read_chat_template, resolve_model_path

        key = f"{rung.model}@{rung.revision}@{rung.chat_template_path}"
        if key not in self._tokenizers:
            tokenizer = load_tokenizer(resolve_model_path(rung.model), rung.revision)
            if rung.chat_template_path:
                tokenizer.chat_template = read_chat_template(rung.chat_template_path)
            self._tokenizers[key] = tokenizer
        return self._tokenizers[key]

    def rendered(self, rung: RungConfig, pairs: Dataset) -> Dataset:
        """`pairs` with conversational rows rendered by the rung tokenizer's chat template (their text columns
        replaced); pairs without messages, and every pair for a tokenizer without a template, as they are (plain)."""
        from datasets.fingerprint import Hasher

        from .data import MESSAGE_COLUMNS, render_chat

        tokenizer = self.tokenizer(rung)
        if MESSAGE_COLUMNS[0] not in pairs.column_names:
            return pairs
        if not getattr(tokenizer, "chat_template", None):
            if rung.name not in self._plain_rungs:  # said once a rung, so that the choice is not silent
                self._plain_rungs.add(rung.name)
                self.log(
                    f"{rung.name}: its tokenizer has no chat template, so it reads conversational pairs as plain "
                    f"text ('ladder.{rung.name}.chat_template_path' gives it one)"
                )
            return pairs
        # Named by what determines it and kept in memory, as `models.tokenize_pairs` does.
        return pairs.map(
            render_chat,
            fn_kwargs={"tokenizer": tokenizer},
            desc=f"Chat template of {rung.name}",
            new_fingerprint=Hasher.hash([pairs._fingerprint, tokenizer.name_or_path, tokenizer.chat_template]),
            keep_in_memory=True,
            load_from_cache_file=False,
        )

    def check_length(self, rung: RungConfig, pairs: Dataset, sample: int = 200) -> None:
        """Stop when the rung's `max_length` cuts half or more of the first `sample` pairs so short that a pair's two
        sequences (prompt and response) are the same tokens: the model cannot tell them apart, and still reports an
        accuracy. Say so when fewer are. Tokenizes only those pairs."""
        rows = self.rendered(rung, pairs.select(range(min(sample, pairs.num_rows))))
        cut = {"truncation": True, "max_length": rung.training.max_length}
        tokenizer = self.tokenizer(rung)
        chosen = tokenizer([p + r for p, r in zip(rows["prompt"], rows["chosen"])], **cut)["input_ids"]
        rejected = tokenizer([p + r for p, r in zip(rows["prompt"], rows["rejected"])], **cut)["input_ids"]
        same = sum(a == b for a, b in zip(chosen, rejected))
        what = (
            f"ladder rung {rung.name!r}: training.max_length is {rung.training.max_length} tokens, and cut there "
            f"{same} of the first {rows.num_rows} pairs read the same for both responses"
        )
        if 2 * same >= rows.num_rows:
            raise W2SInputError(f"{what} (nothing to tell apart; at most half may)")
        if same:
            self.log(f"{what}: the model cannot tell those apart")

    @abstractmethod
    def train(self, job: TrainJob) -> dict[str, Any]:
        """Train `job.rung` on `job.pairs` (a `soft_label` column, if any, holds a teacher's labels, or with
        `job.ground_truth` the ground truth: a ceiling, whose card names TRL's method) with the student loss
        `job.method` and the explicit conflict `job.conflict_alpha`, logging to `job.tracker`; save the model in
        `job.stage_dir/model` and its predictions on `job.test` in `job.stage_dir/predictions.parquet`; return the
        stage summary (with `accuracy`)."""

    def sft(self, stage_dir: Path, rung: RungConfig, pairs: Dataset, seed: int, tracker: TrackerRun) -> dict[str, Any]:
        """Finetune `rung` on the preferred response of each of `pairs` (a model's training pairs, before it holds
        out its validation pairs) at `seed`, logging to `tracker`; save it in `stage_dir/model`; return the stage
        summary. For the tasks whose [`TaskInfo`] names an SFT."""
        raise NotImplementedError(f"the {self.name} task starts no model from supervised finetuning")

    @abstractmethod
    def label(self, rung: RungConfig, stage_dir: Path, labeler_id: str, pairs: Dataset) -> Dataset:
        """`pairs` with the `soft_label` (probability that `chosen` is better) of the model `train` saved in
        `stage_dir`, and a `labeler` column holding `labeler_id`."""


def _wrong_kind(default: Any, value: Any) -> bool:
    """A switch given something other than true/false, or a number given something other than a number."""
    if isinstance(default, bool):
        return not isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, bool) or not isinstance(value, (int, float))
    return False
