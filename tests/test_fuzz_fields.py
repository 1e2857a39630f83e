"""Every recipe field, generated from the schema, given hostile values of each kind (issue 28, part 4): a value of the
wrong type, a non-finite number and one past every bound (1e30) are refused with one line naming the field; no value
ends in a traceback. A field added to the schema is fuzzed here without a new test."""

import dataclasses
import math
import types
import typing
from typing import Any, Literal

import pytest
import yaml

from w2s_align import recipe as schema
from w2s_align.cli import main

BASE = {
    "name": "fuzz",
    "ladder": [{"name": "weak", "model": "m"}, {"name": "strong", "model": "m"}],
    "pairs": [{"weak": "weak", "strong": "strong"}],
    "data": {"source": "synthetic", "gt_size": 100, "w2s_size": 100, "test_size": 100},
}
# Free-form mappings handed to other libraries; their values are fuzzed in test_fuzz (trainer_kwargs ranges, models).
FREE_FORM = {"trainer_kwargs", "config_overrides"}


def leaves(cls: type, prefix: str = "") -> list[tuple[str, Any]]:
    """Every scalar, list and mapping field under the dataclass `cls`, by its dotted path in a recipe (element 0 of a
    list of dataclasses, such as `ladder.0.name`), with its type."""
    out = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        path, kind = f"{prefix}{field.name}", hints[field.name]
        union = typing.get_origin(kind) in (typing.Union, types.UnionType)
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)] if union else []
        nested = next((arg for arg in [kind, *inner] if dataclasses.is_dataclass(arg)), None)
        listed = next((typing.get_args(arg)[0] for arg in [kind, *inner] if typing.get_origin(arg) is list), None)
        if nested is not None:
            out += leaves(nested, f"{path}.")
        elif listed is not None and dataclasses.is_dataclass(listed):
            out += leaves(listed, f"{path}.0.")
        elif field.name not in FREE_FORM:
            out.append((path, kind))
    return out


def allowed(kind: Any, value: Any) -> bool:
    """Whether `value` (as YAML reads it) is of a kind the field's type takes."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return True
    if origin is Literal:
        return value in args and type(value) is type(next(a for a in args if a == value))
    if origin in (typing.Union, types.UnionType):
        return any(allowed(arg, value) for arg in args)
    if kind is type(None):
        return value is None
    if origin is list or kind is list:
        return isinstance(value, list)
    if origin is dict or kind is dict:
        return isinstance(value, dict)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    raise AssertionError(f"a field type the harness does not know: {kind}")  # extend the harness with the schema


# One value of every kind YAML gives, and the numbers that broke runs before.
VALUES = [
    "text", 7, 0.5, True, None, [1], {"a": 1}, float("nan"), float("inf"), -1, 0, 10**30, "", "../escaped",
]  # fmt: skip
FIELDS = leaves(schema.Recipe)


def assign(raw: dict, path: str, value: Any) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(raw))  # a deep copy
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        if isinstance(node, list):
            node = node[int(key)]
        else:
            node = node.setdefault(key, {})
    node[last] = value
    return raw


def test_the_harness_covers_the_schema():
    paths = [path for path, _ in FIELDS]
    for expected in ("name", "ladder.0.training.lora.r", "data.synthetic.kind_weights", "pairs.0.ensemble.seeds"):
        assert expected in paths
    assert len(paths) > 80


@pytest.mark.parametrize(("path", "kind"), FIELDS, ids=[path for path, _ in FIELDS])
def test_every_field_refuses_hostile_values_with_one_line(path, kind, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    for value in VALUES:
        recipe.write_text(yaml.safe_dump(assign(BASE, path, value)))
        where = [] if path == "output_dir" else [f"output_dir={tmp_path / 'run'}"]
        code = main(["plan", str(recipe), *where])  # no traceback: main returns
        err = capsys.readouterr().err
        shown = f"{path} = {value!r}"
        assert code in (0, 2), shown
        if code == 2:
            assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, (shown, err)
        non_finite = isinstance(value, float) and not math.isfinite(value)
        huge = value == 10**30  # every number that sizes work or memory has a bound, and no other is meant to pass it
        if non_finite or huge or not allowed(kind, value):
            assert code == 2, f"{shown} was accepted"
            assert path.split(".")[-1] in err, (shown, err)
    assert [p.name for p in tmp_path.iterdir()] == ["recipe.yaml"], "plan writes nothing"
    assert not (tmp_path.parent / "escaped").exists()
