"""The task interface and registry (`w2s_align.tasks`): what planning knows without importing a task, and the checks
of a rung's trainer settings before training."""

import pytest
from datasets import Dataset

from w2s_align.cache import StageCache
from w2s_align.errors import W2SInputError
from w2s_align.options import TASKS
from w2s_align.recipe_yaml import recipe_from_dict
from w2s_align.tasks import REGISTRY, task_class


def recipe(**changes):
    return recipe_from_dict(
        {"name": "x", "ladder": [{"name": "a", "model": "m"}, {"name": "b", "model": "m"}], **changes}
    )


def test_every_task_of_the_vocabulary_is_registered_and_its_implementation_carries_its_name():
    assert tuple(REGISTRY) == TASKS
    for name, info in REGISTRY.items():
        assert info.name == name and task_class(name).name == name


def test_what_planning_knows_of_a_task():
    reward, dpo = REGISTRY["reward"], REGISTRY["dpo"]
    plain = recipe()
    assert reward.determinants(plain) == {} and reward.supervisor(plain) == "reward" and reward.tag == "rm"
    assert dpo.supervisor(recipe(task="dpo")) == "dpo"
    assert dpo.supervisor(recipe(task="dpo", dpo={"supervisor": "reward"})) == "reward"
    assert dpo.determinants(recipe(task="dpo", dpo={"beta": 0.2}))["dpo"]["beta"] == 0.2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frobnicate": 1}, "training.trainer_kwargs.frobnicate is not a W2SRewardConfig field"),
        ({"max_grad_norm": "big"}, "training.trainer_kwargs.max_grad_norm must be a number, got 'big'"),
        ({"bf16_full_eval": 1}, "training.trainer_kwargs.bf16_full_eval must be true or false, got 1"),
        ({"lr_scheduler_type": "cosinus"}, "W2SRewardConfig refuses its training settings: cosinus is not a valid"),
    ],
)
def test_a_rungs_trainer_kwargs_are_checked_against_the_trainer_config(kwargs, message, tmp_path):
    bad = recipe(output_dir=str(tmp_path), training={"trainer_kwargs": kwargs})
    with pytest.raises(W2SInputError, match=message):
        task_class("reward").check(bad)
    task_class("reward").check(recipe(output_dir=str(tmp_path)))  # the defaults pass


def test_conversations_are_read_as_plain_text_by_a_tokenizer_without_a_template_and_it_is_said_once(
    tiny_model_dir, tmp_path
):
    rungs = [{"name": "a", "model": str(tiny_model_dir)}, {"name": "b", "model": str(tiny_model_dir)}]
    plain = recipe(output_dir=str(tmp_path), ladder=rungs)
    lines = []
    task = task_class("reward")(plain, StageCache(tmp_path), log=lines.append)
    messages = [[{"role": "user", "content": "hi"}], [{"role": "assistant", "content": "hello"}]]
    pairs = Dataset.from_dict(
        {"prompt": ["hi"], "chosen": ["hello"], "rejected": ["go"], "prompt_messages": [messages[0]],
         "chosen_messages": [messages[1]], "rejected_messages": [messages[1]]}
    )  # fmt: skip
    for _ in range(2):
        assert task.rendered(plain.ladder[0], pairs)["chosen"] == ["hello"]
    assert len(lines) == 1 and "has no chat template, so it reads conversational pairs as plain text" in lines[0]
