"""Tasks: what the rungs of a ladder learn, behind one interface, registered by name (the recipe's `task:`).

| name | class | models | trainer config |
| --- | --- | --- | --- |
| `reward` | [`~w2s_align.reward_task.RewardTask`] | reward models | [`W2SRewardConfig`] |
| `dpo` | [`~w2s_align.dpo_task.DPOTask`] | DPO/SimPO policies, after SFT | [`W2SDPOConfig`] |

A task trains a rung on preference pairs (ground truth, or a teacher's soft labels) and saves the model with its test
predictions; it labels pairs with a model it trained; it names its trainer config (a recipe's `trainer_kwargs` must
be fields of it). The pipeline knows tasks only through this interface. What planning needs of a task (its tag, the
recipe settings that determine every model it trains, which task supervises its students, what its weak models label
by) is a [`TaskInfo`] record in [`REGISTRY`], so that reading and planning a recipe import no implementation: they
are imported when a stage trains or labels, and with them torch and the trainers.

Example:

```python
>>> from w2s_align.recipe_yaml import load_recipe
>>> from w2s_align.tasks import REGISTRY, task_class
>>> REGISTRY["dpo"].supervisor(load_recipe("recipes/quickstart.yaml", ["task=dpo"]))
'dpo'
>>> task_class("dpo").config_class().__name__
'W2SDPOConfig'
```
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import W2SInputError, first_line
from .options import TASKS
from .recipe import Recipe, RungConfig

if TYPE_CHECKING:
    from datasets import Dataset

    from .cache import StageCache
    from .tracking import TrackerRun
    from .training import TrainJob


def _no_settings(recipe: Recipe) -> dict[str, Any]:
    return {}


def _prob_chosen(recipe: Recipe) -> tuple[str, float] | None:
    return None


@dataclass(frozen=True)
class TaskInfo:
    """A task as a plan knows it, without importing its implementation.

    Args:
        name (`str`): the recipe's `task:`.
        tag (`str`): marks this task's models where they supervise another task's students, e.g. `rm`.
        implementation (`str`): `"module:class"` of its [`Task`].
        auto_class (`str`): the transformers auto class its models are built with.
        determinants (`Callable[[Recipe], dict]`, *optional*, defaults to none): the recipe settings of this task that
            determine every model it trains, beyond the rung, data and seed.
        supervisor (`Callable[[Recipe], str]`, *optional*, defaults to the task itself): the task whose weak models
            label the weak-to-strong split for this task's students.
        sft (`Callable[[Recipe], tuple[float, float | None] | None]`, *optional*, defaults to none): the supervised
            finetuning every model of this task starts from (epochs, and a learning rate or None for the rung's),
            on the preferred responses of the pairs it trains on ([`Task.sft`]); None: none.
        label_score (`Callable[[Recipe], tuple[str, float] | None]`, *optional*, defaults to `prob_chosen`): the
            prediction column and its scale by which a model of this task labels pairs, where it is not the
            `prob_chosen` its predictions are evaluated by (a weak policy labels by its log-likelihood): the
            deception analyzer defines what a weak teacher knows by it. None: by `prob_chosen`.
    """

    name: str
    tag: str
    implementation: str
    auto_class: str
    determinants: Callable[[Recipe], dict[str, Any]] = _no_settings
    supervisor: Callable[[Recipe], str] | None = None
    sft: Callable[[Recipe], tuple[float, float | None] | None] = lambda recipe: None
    label_score: Callable[[Recipe], tuple[str, float] | None] = _prob_chosen

    def __post_init__(self):
        if self.supervisor is None:
            object.__setattr__(self, "supervisor", lambda recipe: self.name)


def _dpo_label_score(recipe: Recipe) -> tuple[str, float]:
    """A weak policy labels by its summed log-likelihood difference for DPO and the mean for SimPO (`likelihood_hard`,
    Yang et al.), or by the implicit reward difference (`implicit_reward_soft`; SimPO's scaled mean log-likelihood
    difference)."""
    settings = recipe.dpo
    simpo = settings.loss_type == "simpo"
    if settings.weak_labels == "likelihood_hard":
        return ("margin_avg_logp" if simpo else "margin_logp"), 1.0
    return ("margin_avg_logp", settings.beta) if simpo else ("margin_implicit", 1.0)


REGISTRY: dict[str, TaskInfo] = {
    info.name: info
    for info in (
        TaskInfo("reward", "rm", "w2s_align.reward_task:RewardTask", "AutoModelForSequenceClassification"),
        TaskInfo(
            "dpo",
            "policy",
            "w2s_align.dpo_task:DPOTask",
            "AutoModelForCausalLM",
            determinants=lambda recipe: {"dpo": dataclasses.asdict(recipe.dpo)},
            # `dpo.supervisor: reward`: the weak labels come from the weak rung trained as a reward model.
            supervisor=lambda recipe: "reward" if recipe.dpo.supervisor == "reward" else "dpo",
            sft=lambda recipe: (recipe.dpo.sft_epochs, recipe.dpo.sft_learning_rate) if recipe.dpo.sft else None,
            label_score=_dpo_label_score,
        ),
    )
}
assert tuple(REGISTRY) == TASKS, "options.TaskName names the tasks"


def task_class(name: str) -> type[Task]:
    """The implementation of the task registered as `name` (imported now)."""
    module, _, attribute = REGISTRY[name].implementation.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Task(ABC):
    """A task of the pipeline. Subclasses set `name` (their [`TaskInfo`] is `REGISTRY[name]`), and implement
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
