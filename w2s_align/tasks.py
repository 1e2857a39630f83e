"""Tasks: what the rungs of a ladder learn, behind one interface, registered by name (the recipe's `task:`).

| name | class | models | trainer config |
| --- | --- | --- | --- |
| `reward` | [`~w2s_align.reward_task.RewardTask`] | reward models | [`W2SRewardConfig`] |
| `dpo` | [`~w2s_align.dpo_task.DPOTask`] | DPO/SimPO policies, after SFT | [`W2SDPOConfig`] |

A task trains a rung on preference pairs (ground truth, or a teacher's soft labels) and saves the model with its test
predictions; it labels pairs with a model it trained; it names its trainer config (a recipe's `trainer_kwargs` must
be fields of it) and the recipe settings that determine every model it trains. The pipeline knows tasks only through
this interface. Implementations are imported on first use, and they import their trainers only when a stage trains,
so reading a recipe, planning it, or rerunning a finished one does not import TRL's trainers.

Example:

```python
>>> from w2s_align.tasks import task_class
>>> task_class("dpo").config_class().__name__
'W2SDPOConfig'
```
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .errors import W2SInputError, first_line

if TYPE_CHECKING:
    from datasets import Dataset

    from .cache import StageCache
    from .recipe import Recipe, RungConfig
    from .tracking import TrackerRun

# name -> "module:class" of its implementation.
REGISTRY = {"reward": "w2s_align.reward_task:RewardTask", "dpo": "w2s_align.dpo_task:DPOTask"}
TaskName = Literal[tuple(REGISTRY)]
# Where `Task.train` saves a trained model's test predictions, in its stage directory.
PREDICTIONS_FILE = "predictions.parquet"
# Trainer config fields the pipeline sets itself for every stage: a recipe's `trainer_kwargs` may not set them.
PIPELINE_OWNED = ("output_dir", "seed", "student_loss", "max_length", "conflict_alpha")


def task_class(name: str) -> type[Task]:
    """The task registered as `name`."""
    module, _, attribute = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


class Task(ABC):
    """A task of the pipeline. Subclasses set `name` and `tag`, and implement `config_class`, `train` and `label`.

    Args:
        recipe ([`Recipe`]): the run's recipe.
        cache ([`StageCache`]): the run's stages, for stages the task keeps for itself (e.g. SFT models).
        log (`Callable[[str], None]`, *optional*, defaults to `print`): one line per step.
    """

    name: ClassVar[str]
    tag: ClassVar[str]  # marks this task's models where they supervise another task's students, e.g. `rm`

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
    def determinants(cls, recipe: Recipe) -> dict[str, Any]:
        """Recipe settings of this task that determine every model it trains, beyond the rung, data and seed."""
        return {}

    @classmethod
    def label_score(cls, recipe: Recipe) -> tuple[str, float] | None:
        """The prediction column and its scale by which a model of this task labels pairs, where it is not the
        `prob_chosen` its predictions are evaluated by (a weak policy labels by its log-likelihood): the deception
        analyzer defines what a weak teacher knows by it. None: by `prob_chosen`."""
        return None

    @classmethod
    def supervisor(cls, recipe: Recipe) -> str:
        """The task whose weak models label the weak-to-strong split for this task's students."""
        return cls.name

    @classmethod
    def check(cls, recipe: Recipe) -> None:
        """Stop on a rung's `trainer_kwargs` entry that is not a field of `config_class`, or one the pipeline or the
        `tracking` or `hub` block sets."""
        from .hub import HUB_OWNED
        from .tracking import TRACKING_OWNED

        owned = {**TRACKING_OWNED, **HUB_OWNED}
        config_class = cls.config_class()
        defaults = {field.name: field.default for field in dataclasses.fields(config_class)}
        for rung in recipe.ladder:
            for key, value in rung.training.trainer_kwargs.items():
                if key in PIPELINE_OWNED:
                    reason = "is set by the pipeline"
                elif key in owned:
                    reason = f"is set by {owned[key]}"
                elif key not in defaults:
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
        from .tracking import TrackerRun
        from .training import trainer_kwargs

        tracker = TrackerRun.for_stage(recipe, "check", 0)
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

    @abstractmethod
    def train(
        self,
        stage_dir: Path,
        rung: RungConfig,
        pairs: Dataset,
        seed: int,
        method: str,
        conflict_alpha: float,
        test: Dataset,
        tracker: TrackerRun,
        ground_truth: bool = False,
    ) -> dict[str, Any]:
        """Train `rung` on `pairs` (a `soft_label` column, if any, holds a teacher's labels, or with `ground_truth`
        the ground truth: a ceiling, whose card names TRL's method) with the student loss `method` and the explicit
        conflict `conflict_alpha`, logging to `tracker`; save the model in `stage_dir/model` and its predictions on
        `test` in `stage_dir/predictions.parquet`; return the stage summary (with `accuracy`)."""

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
