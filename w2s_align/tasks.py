"""Tasks: what the rungs of a ladder learn, behind one interface, registered by name (the recipe's `task:`).

| name | class | models | trainer config |
| --- | --- | --- | --- |
| `reward` | [`~w2s_align.reward_task.RewardTask`] | reward models | [`W2SRewardConfig`] |
| `dpo` | [`~w2s_align.dpo_task.DPOTask`] | DPO/SimPO policies, after SFT | [`W2SDPOConfig`] |
| `classify` | [`~w2s_align.classify_task.ClassifyTask`] | binary classifiers (Burns et al.) | [`W2SClassifierConfig`]|

A task trains a rung on preference pairs (ground truth, or a teacher's soft labels) and saves the model with its test
predictions; it labels pairs with a model it trained; it names its trainer config (a recipe's `trainer_kwargs` must
be fields of it). The pipeline knows tasks only through this interface ([`~w2s_align.task_interface.Task`]). What
planning needs of a task (its tag, the recipe settings that determine every model it trains, which task supervises
its students, what its weak models label by) is a [`TaskInfo`] record in [`REGISTRY`], so that reading and planning a
recipe import no implementation: they are imported when a stage trains or labels, and with them torch and the
trainers. The implementations import the interface, never this registry.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .options import TASKS
from .recipe import Recipe

if TYPE_CHECKING:
    from .task_interface import Task


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
        examples (`bool`, *optional*, defaults to `False`): its data are classification examples (a text and its
            ground truth, [`w2s_align.classification_data`]) rather than preference pairs.
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
    examples: bool = False
    label_score: Callable[[Recipe], tuple[str, float] | None] = _prob_chosen

    def __post_init__(self):
        if self.supervisor is None:
            object.__setattr__(self, "supervisor", lambda recipe: self.name)


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
            label_score=lambda recipe: recipe.dpo.label_score(),
        ),
        TaskInfo(
            "classify",
            "clf",
            "w2s_align.classify_task:ClassifyTask",
            "AutoModelForSequenceClassification",
            examples=True,
        ),
    )
}
assert tuple(REGISTRY) == TASKS, "options.TaskName names the tasks"


def task_class(name: str) -> type[Task]:
    """The implementation of the task registered as `name` (imported now)."""
    module, _, attribute = REGISTRY[name].implementation.partition(":")
    return getattr(importlib.import_module(module), attribute)
