"""The recipe reference documents every field of the schema."""

import dataclasses
from pathlib import Path

import pytest

from w2s_align import recipe

DOC = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text()


@pytest.mark.parametrize(
    "cls",
    [
        recipe.Recipe,
        recipe.DataConfig,
        recipe.SyntheticSettings,
        recipe.TrainingSettings,
        recipe.LoraSettings,
        recipe.RungConfig,
        recipe.PairConfig,
        recipe.LossSettings,
        recipe.DPOSettings,
        recipe.ConflictConfig,
        recipe.HelpfulDataConfig,
        recipe.AnalysisConfig,
    ],
    ids=lambda c: c.__name__,
)
def test_every_recipe_field_is_documented(cls):
    missing = [f.name for f in dataclasses.fields(cls) if f"| `{f.name}` |" not in DOC]
    assert not missing, f"docs/recipes.md lacks {cls.__name__} fields {missing}"
