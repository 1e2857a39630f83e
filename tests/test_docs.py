"""The recipe reference in docs/recipes.md is the schema's own, and covers every block of it."""

import dataclasses
import types
import typing
from pathlib import Path

from w2s_align.recipe import Recipe
from w2s_align.recipe_yaml import reference

DOC = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text()


def _blocks(cls, seen=None) -> set[str]:
    """The names of every dataclass a recipe can hold, found through the type hints."""
    seen = set() if seen is None else seen
    seen.add(cls.__name__)
    for hint in typing.get_type_hints(cls).values():
        stack = [hint]
        while stack:
            tp = stack.pop()
            if dataclasses.is_dataclass(tp) and tp.__name__ not in seen:
                _blocks(tp, seen)
            elif typing.get_origin(tp) in (list, dict, typing.Union, types.UnionType):
                stack.extend(typing.get_args(tp))
    return seen


def test_the_reference_in_the_docs_is_generated_from_the_schema():
    assert reference() in DOC, "docs/recipes.md is stale: replace its reference with w2s_align.recipe_yaml.reference()"


def test_the_reference_covers_every_block_of_the_schema():
    blocks = _blocks(Recipe)
    assert {"Recipe", "DataConfig", "StudentLossSettings", "LoraSettings"} <= blocks  # the walk finds nested blocks
    missing = [name for name in sorted(blocks) if f"(`{name}`)" not in reference()]
    assert not missing, f"w2s_align.recipe_yaml.reference() lacks the blocks {missing}"
