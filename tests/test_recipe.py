"""Recipe loading: typed fields, defaults merged into rungs, command-line overrides, and clear errors."""

from pathlib import Path

import pytest
import yaml

from w2s_align.errors import W2SInputError
from w2s_align.recipe_yaml import load_recipe, recipe_from_dict

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def write(tmp_path, raw) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return path


@pytest.mark.parametrize("path", sorted(RECIPES.rglob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads(path):
    recipe = load_recipe(path)
    assert len(recipe.ladder) >= 2
    assert recipe.pairs


def test_rung_training_inherits_recipe_defaults_and_overrides_them():
    recipe = load_recipe(RECIPES / "quickstart.yaml")
    weak, strong = recipe.ladder
    assert weak.training.learning_rate == pytest.approx(1e-3)  # the rung's own value
    assert strong.training.learning_rate == pytest.approx(3e-4)  # the recipe-wide default
    assert weak.training.max_length == strong.training.max_length == 96


def test_overrides_by_dotted_key_index_and_rung_name():
    recipe = load_recipe(
        RECIPES / "quickstart.yaml",
        ["seeds=[0, 1]", "data.gt_size=50", "ladder.minilm-l3.training.learning_rate=1e-4", "ladder.0.num_layers=2"],
    )
    assert recipe.seeds == [0, 1]
    assert recipe.data.gt_size == 50
    assert recipe.rung("minilm-l3").training.learning_rate == pytest.approx(1e-4)
    assert recipe.rung("minilm-l1").num_layers == 2


def test_recipe_wide_override_reaches_every_rung_without_its_own_value():
    recipe = load_recipe(RECIPES / "quickstart.yaml", ["training.num_train_epochs=4"])
    assert recipe.rung("minilm-l3").training.num_train_epochs == 4
    assert recipe.rung("minilm-l1").training.num_train_epochs == 6  # its own value wins


def test_yaml_scientific_notation_without_dot_is_a_float(tmp_path):
    # YAML 1.1 reads 5e-5 as a string; a number field accepts it.
    path = write(
        tmp_path, "name: x\nladder: [{name: a, model: m}, {name: b, model: m}]\ntraining:\n  learning_rate: 5e-5\n"
    )
    assert load_recipe(path).training.learning_rate == pytest.approx(5e-5)


def test_pairs_default_to_every_rung_against_the_last():
    recipe = recipe_from_dict({"name": "x", "ladder": [{"name": n, "model": "m"} for n in ("a", "b", "c")]})
    assert [(p.weak, p.strong) for p in recipe.pairs] == [("a", "c"), ("b", "c")]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "x", "ladder": [], "datta": {}}, "unknown key 'datta' (did you mean 'data'?)"),
        ({"name": "x", "ladder": [{"name": "a", "model": "m", "trainig": {}}]}, "unknown key 'ladder.0.trainig'"),
        ({"name": "x", "ladder": [], "data": {"gt_size": "many"}}, "'data.gt_size' must be an integer, got 'many'"),
        ({"name": "x", "ladder": [], "seeds": 3}, "'seeds' must be a list of integers, got 3"),
        ({"name": "x", "ladder": [], "methods": ["xent", "magic"]}, "'methods.1' must be one of 'xent', 'logconf'"),
        ({"name": "x", "ladder": [], "data": {"source": "s3"}}, "'data.source' must be one of 'synthetic'"),
        (
            {"name": "x", "ladder": [{"name": "a", "model": "m", "training": {"freeze_embeddings": "yes"}}]},
            "'ladder.0.training.freeze_embeddings' must be true or false",
        ),
        ({"ladder": []}, "missing required key 'name'"),
        ({"name": "x", "ladder": [{"name": "a"}]}, "missing required key 'ladder.0.model'"),
        ({"name": "x", "ladder": [{"name": "a", "model": "m"}]}, "needs at least two rungs"),
        ({"name": "x", "ladder": [{"name": "a", "model": "m"}, {"name": "a", "model": "m"}]}, "duplicate rung names"),
        (
            {
                "name": "x",
                "ladder": [{"name": "a", "model": "m"}, {"name": "b", "model": "m"}],
                "pairs": [{"weak": "a", "strong": "z"}],
            },
            "'pairs.0.strong' is 'z', which is not a rung",
        ),
        (
            {
                "name": "x",
                "ladder": [{"name": "a", "model": "m"}, {"name": "b", "model": "m"}],
                "data": {"test_size": 0},
            },
            "'data.test_size' must be positive",
        ),
        (
            {
                "name": "x",
                "ladder": [{"name": "a", "model": "m"}, {"name": "b", "model": "m"}],
                "data": {"evaluate_on": "validation"},
            },
            "'data.evaluate_on: validation' needs 'data.validation_size'",
        ),
        (
            {"name": "x", "ladder": [{"name": "a", "model": "m"}, {"name": "b", "model": "m"}], "controls": "yes"},
            "'controls' must be true or false",
        ),
    ],
)
def test_bad_recipes_name_the_file_and_key(tmp_path, raw, message):
    path = write(tmp_path, raw)
    with pytest.raises(W2SInputError) as error:
        load_recipe(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_bad_override_is_reported():
    with pytest.raises(W2SInputError, match="no item named 'nope'"):
        load_recipe(RECIPES / "quickstart.yaml", ["ladder.nope.num_layers=2"])
    with pytest.raises(W2SInputError, match="expected KEY=VALUE"):
        load_recipe(RECIPES / "quickstart.yaml", ["data.gt_size"])
    with pytest.raises(W2SInputError, match="unknown key 'data.gt_sise' \\(did you mean 'gt_size'\\?\\)"):
        load_recipe(RECIPES / "quickstart.yaml", ["data.gt_sise=3"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(W2SInputError, match="recipe file not found"):
        load_recipe(tmp_path / "none.yaml")
    with pytest.raises(W2SInputError, match="not valid YAML"):
        load_recipe(write(tmp_path, "name: [unclosed"))


@pytest.mark.parametrize(("loss_type", "beta"), [("sigmoid", 0.1), ("simpo", 2.0)])
def test_dpo_beta_defaults_to_the_papers_value_for_the_loss(loss_type, beta):
    ladder = [{"name": "a", "model": "m"}, {"name": "b", "model": "m"}]
    raw = {"name": "x", "task": "dpo", "ladder": ladder, "dpo": {"loss_type": loss_type}}
    recipe = recipe_from_dict(raw)
    assert recipe.dpo.beta == beta and recipe.dpo.weak_labels == "likelihood_hard"
    assert recipe_from_dict({**raw, "dpo": {"loss_type": loss_type, "beta": 0.5}}).dpo.beta == 0.5


def test_validation_settings_are_checked():
    quickstart = RECIPES / "quickstart.yaml"
    with pytest.raises(W2SInputError, match=r"'ladder.0.training.validation_fraction' must be in \[0, 1\), got 1.0"):
        load_recipe(quickstart, ["training.validation_fraction=1.0"])
    with pytest.raises(W2SInputError, match="no validation split to evaluate: set 'training.validation_fraction'"):
        load_recipe(quickstart, ["training.trainer_kwargs={eval_strategy: steps}"])
    recipe = load_recipe(quickstart, ["training.validation_fraction=0.1", "training.trainer_kwargs={eval_steps: 5}"])
    assert all(rung.training.validation_fraction == 0.1 for rung in recipe.ladder)


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        (["longest"], "'conflicts.checks.0' is 'longest'"),
        (["deceiver"], "'conflicts.checks.0' is 'deceiver'"),
        (["deceiver-0"], "'conflicts.checks.0' is 'deceiver-0'"),
        (["deceiver-1.5"], "'conflicts.checks.0' is 'deceiver-1.5'"),
        (["longer-2"], "'conflicts.checks.0' is 'longer-2'"),
        (["longer", "longer"], "'conflicts.checks' repeats ['longer']"),
        (["deceiver-.50"], "'conflicts.checks.0' is 'deceiver-.50'"),  # one spelling per share: deceiver-0.5
        (
            [f"deceiver-0.{i + 1}" for i in range(9)] + ["same-seed"] * 12,
            "'conflicts.checks' names 21 checks; at most 20",
        ),
    ],
)
def test_checks_of_the_deception_verdicts_are_named_as_documented(checks, message):
    raw = yaml.safe_load((RECIPES / "quickstart.yaml").read_text())
    raw["conflicts"]["checks"] = checks
    with pytest.raises(W2SInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        recipe_from_dict(raw)


def test_checks_need_a_conflicted_student_and_its_controls():
    raw = yaml.safe_load((RECIPES / "quickstart.yaml").read_text())
    raw["conflicts"]["checks"] = ["same-seed", "deceiver-0.5"]
    assert recipe_from_dict(raw).conflicts.checks == ["same-seed", "deceiver-0.5"]
    for change in ({"controls": False}, {"conflicts": {**raw["conflicts"], "settings": ["none"]}}):
        with pytest.raises(W2SInputError, match="it needs an explicit or implicit conflict"):
            recipe_from_dict({**raw, **change})
