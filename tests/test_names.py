"""Names a user gives never make two stages or files one (issue 36): rung names built from the words and separators of
stage names are refused with one line, and every recipe that loads plans one stage, one predictions file and one
directory per spec, each within the file-system's name limit."""

import random

import pytest

from w2s_align.artifacts import bounded_name
from w2s_align.cache import StageCache
from w2s_align.errors import W2SInputError
from w2s_align.plan_builder import build_plan
from w2s_align.recipe_yaml import recipe_from_dict

# The words and separators stage names are built from, and a few ordinary ones.
WORDS = ["w", "v", "m", "via", "from", "gt", "seed0", "rm", "policy", "probability", "x3", "ensemble", "xent", "5"]
SEPARATORS = ["-", ".", "+", "_", ""]


def hostile_names(count: int, seed: int) -> list[str]:
    draw = random.Random(seed)
    names = []
    while len(names) < count:
        words = draw.choices(WORDS, k=draw.randint(2, 4))
        name = words[0] + "".join(draw.choice(SEPARATORS) + word for word in words[1:])
        if name[0].isalnum():
            names.append(name)
    return names


def recipe_with(name: str, task: str) -> dict:
    """Every way a rung name enters a stage name: a direct pair, a bootstrapping chain, an ensemble of seeds combined
    by probability, a reward supervisor of a DPO student, conflicts with controls and checks."""
    rungs = ["w", "v", "m", "s", name]
    return {
        "name": "names",
        "output_dir": "unused",
        "task": task,
        "seeds": [0],
        "data": {"source": "synthetic", "gt_size": 40, "w2s_size": 30, "test_size": 20},
        "ladder": [{"name": rung, "model": "m"} for rung in dict.fromkeys(rungs)],
        "pairs": [
            {"weak": "w", "strong": "s", "via": ["m"]},
            {"weak": name, "strong": "s"},
            {"weak": "w", "strong": name, "via": ["v"]},
            {"weak": "w", "strong": "s", "ensemble": {"rungs": ["v"], "seeds": 3, "combine": "probability"}},
            {"weak": name, "strong": "s", "ensemble": {"rungs": ["w"]}},
        ],
        "methods": ["xent"],
        "dpo": {"supervisor": "reward"},
        "conflicts": {"settings": ["none", "explicit"], "checks": ["same-seed", "deceiver-0.5"]},
    }


@pytest.mark.parametrize("task", ["reward", "dpo"])
def test_a_rung_name_either_is_refused_or_names_its_stages_alone(task):
    refused = 0
    for name in hostile_names(150, seed=len(task)):
        if name in ("w", "v", "m", "s"):
            continue
        try:
            recipe = recipe_from_dict(recipe_with(name, task))
        except W2SInputError as error:
            assert "\n" not in str(error) and f"'ladder.4.name' is {name!r}" in str(error), error
            refused += 1
            continue
        plan = build_plan(recipe)  # the plan's own guard raises on two specs with one name
        stages = [step.stage_name for step in plan.steps]
        assert len(set(stages)) == len(stages)
        cache = StageCache("unused")
        directories = {cache.stage(step).dir.name for step in plan.steps}
        assert len(directories) == len(stages), name
        files = [bounded_name(model.key) for model in plan.models]
        assert len(set(files)) == len(files), name
    assert 20 < refused < 140  # both branches are exercised


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("w-via-m", "'via' is a word of stage names"),
        ("w+v", "'+' joins the rungs of an ensemble"),
        ("w-rm", "'rm' is a word of stage names"),
        ("vx3", "a trailing 'x<number>'"),
        ("v-probability", "'probability' is a word of stage names"),
        ("s.from-w", "'.' separates the parts of stage names"),
    ],
)
def test_each_kind_of_colliding_name_is_refused_with_its_reason(name, words):
    with pytest.raises(W2SInputError, match=f"'ladder.4.name' is '{name}'.*{words}".replace("+", r"\+")):
        recipe_from_dict(recipe_with(name, "reward"))


def test_ordinary_model_names_are_accepted():
    for name in ("qwen2.5-0.5b", "gpt2-xl", "opt-1.3b", "llama_3-8b", "minilm-l1"):
        assert recipe_from_dict(recipe_with(name, "reward")).ladder[4].name == name


def test_names_past_the_file_system_limit_are_shortened_and_stay_distinct():
    long = [f"{'a' * 95}-{i}" for i in range(3)]  # legal rung names whose students' names pass 255 bytes
    raw = recipe_with(long[0], "reward")
    raw["ladder"] += [{"name": name, "model": "m"} for name in long[1:]]
    raw["pairs"] += [{"weak": long[1], "strong": long[0], "via": [long[2]]}]
    plan = build_plan(recipe_from_dict(raw))
    cache = StageCache("unused")
    directories = [cache.stage(step).dir.name for step in plan.steps]
    assert max(len(name.encode()) for name in directories) <= 255
    assert max(len(step.stage_name) for step in plan.steps) > 255  # the case is real
    assert len(set(directories)) == len(directories)
