"""Reading a recipe: YAML into the schema of [`w2s_align.recipe`], command-line overrides, the cross-field checks,
and the generated reference of docs/recipes.md.

[`load_recipe`] reads a file, applies command-line overrides (`key.path=value`, values parsed as YAML), fills each
rung's training settings from the recipe-wide defaults, and checks every key, type and cross-field rule, raising
[`W2SInputError`] with the file and key at fault.

Example:

```python
>>> from w2s_align.recipe_yaml import load_recipe
>>> recipe = load_recipe("recipes/quickstart.yaml", ["seeds=[0, 1]", "ladder.minilm-l1.training.learning_rate=1e-4"])
>>> recipe.ladder[0].training.learning_rate
0.0001
```
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from .chat_templates import JINJA_SUFFIXES, read_chat_template_file
from .errors import W2SInputError
from .options import (
    CLASSIFICATION_SOURCES,
    CONFLICT_KINDS,
    DECEPTION_CHECKS,
    LABEL_FILTERS,
    MIN_BOOTSTRAP,
    OWNED_TRAINER_FIELDS,
    PAIR_SOURCES,
    STUDENT_LOSSES,
    SYNTHETIC_KINDS,
    FilterSetting,
    ProbeSettings,
    StudentLossSettings,
)
from .recipe import (
    AnalysisConfig,
    ConflictConfig,
    DataConfig,
    DPOSettings,
    EnsembleConfig,
    GenerativeSettings,
    HelpfulDataConfig,
    HubConfig,
    LoraSettings,
    PairConfig,
    Recipe,
    RungConfig,
    SyntheticSettings,
    TrackingConfig,
    TrainingSettings,
)
from .tasks import REGISTRY


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe file, apply `key.path=value` overrides, and check it.

    Raises:
        W2SInputError: the file is missing or not YAML, a key is unknown, a value has the wrong type, or the ladder,
            pairs or methods do not fit together.
    """
    path = Path(path)
    if path.is_dir():
        raise W2SInputError(f"{path}: a directory, not a recipe file (e.g. recipes/quickstart.yaml)")
    if not path.is_file():
        raise W2SInputError(f"{path}: recipe file not found")
    raw = read_yaml_file(path)
    if not isinstance(raw, dict):
        raise W2SInputError(f"{path}: a recipe must be a mapping of keys to values")
    if not overrides:
        return recipe_from_dict(raw, source=str(path))
    recipe_from_dict(raw, source=str(path))  # the file alone first, so that an error is blamed on what made it
    for override in overrides:
        apply_override(raw, override)
    return recipe_from_dict(raw, source=f"{path} with the overrides {' '.join(overrides)}")


# The most values a recipe may hold once its YAML aliases are expanded: far above any real recipe, far below what
# exhausts memory (a "billion laughs" file expands 10 aliases of 10 aliases ... into billions).
MAX_VALUES = 100_000
# PyYAML builds the whole document before [`MAX_VALUES`] is counted, at about a kilobyte of memory per value: a
# longer text is refused unread. The longest recipe of the project is under 10 KB.
MAX_YAML_BYTES = 1_000_000


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str) -> Any:
    """YAML text read safely: no key given twice in a mapping, and at most [`MAX_VALUES`] values once its aliases
    are expanded (a file whose aliases nest would otherwise fill the memory of whatever walks it), from at most
    [`MAX_YAML_BYTES`] of text."""
    if len(text) > MAX_YAML_BYTES:
        raise yaml.YAMLError(f"longer than {MAX_YAML_BYTES} characters")
    data = yaml.load(text, Loader=_RecipeLoader)
    count, stack = 0, [data]
    while stack:
        count += 1
        if count > MAX_VALUES:
            raise yaml.YAMLError(f"more than {MAX_VALUES} values once its aliases are expanded")
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return data


def read_yaml_file(path: Path, name: str | None = None) -> Any:
    """The YAML file at `path` read as [`read_yaml`] reads text, or one `W2SInputError` that starts with `name`
    (default: the path): not valid YAML, not UTF-8, or not readable."""
    name = name or str(path)
    try:
        with path.open(encoding="utf-8") as handle:  # read no more than the limit of a file of any size
            return read_yaml(handle.read(MAX_YAML_BYTES + 1))
    except yaml.YAMLError as error:
        raise W2SInputError(f"{name}: not valid YAML ({yaml_error(error)})") from None
    except UnicodeDecodeError:
        raise W2SInputError(f"{name}: not UTF-8 text") from None
    except OSError as error:
        raise W2SInputError(f"{name}: cannot be read ({error.strerror})") from None


def yaml_error(error: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def recipe_from_dict(raw: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Build and check a [`Recipe`] from a plain dictionary (as read from YAML)."""
    raw = copy.deepcopy(raw)
    defaults = raw.get("training") or {}
    # Check the shared settings before they are copied into each rung, so errors name `training.<key>`.
    _convert(defaults, TrainingSettings, source, "training")
    for index, rung in enumerate(raw.get("ladder") or []):
        if isinstance(rung, dict):
            own = rung.get("training") or {}
            if not isinstance(own, dict):
                raise W2SInputError(f"{source}: 'ladder.{index}.training' must be a mapping")
            rung["training"] = {**defaults, **own}
    recipe = _convert(raw, Recipe, source, "")
    _complete(recipe)
    _check(recipe, source)
    return recipe


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set one `dotted.key=value` in a raw recipe. List items are addressed by index or by their `name`."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise W2SInputError(f"override {override!r}: expected KEY=VALUE, e.g. data.gt_size=500")
    try:
        value = read_yaml(text)
    except yaml.YAMLError:
        value = text
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            index = _list_index(node, part, override)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise W2SInputError(f"override {override!r}: '{'.'.join(parts[:depth])}' is not a mapping or a list")


def _list_index(items: list, part: str, override: str) -> int:
    if part.lstrip("-").isdigit():
        index = int(part)
        if -len(items) <= index < len(items):
            return index
        raise W2SInputError(f"override {override!r}: index {index} is out of range (the list has {len(items)} items)")
    names = [item.get("name") for item in items if isinstance(item, dict)]
    if part in names:
        return names.index(part)
    raise W2SInputError(f"override {override!r}: no item named {part!r}; names are {names}")


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(tp))
    if origin is list:
        item = typing.get_args(tp)[0]
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(item)
        return f"a list of {plural}" if plural else f"a list (items: {_describe(item)})"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


# A number YAML 1.1 leaves as text (`5e-5`, no dot).
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
# Numbers size work and memory (steps, pairs, resamples): a field's metadata gives its largest value ("max"); no other
# number in a recipe is ever meant to pass this.
MAX_NUMBER = 10**9


def _convert(value: Any, tp: Any, source: str, key: str, bound: float = MAX_NUMBER) -> Any:
    """Check `value` against the type hint `tp` (numbers within `bound`) and build dataclasses from mappings."""
    where = f"{source}: '{key}'" if key else source
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, source, key, bound)
            except W2SInputError as error:
                errors.append(error)
        if len(errors) == 1:
            raise errors[0]
        raise W2SInputError(f"{where} must be {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise W2SInputError(f"{where} must be {_describe(tp)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise W2SInputError(f"{where} must be {_describe(tp)}, got {value!r}")
        (item_type,) = typing.get_args(tp)
        return [_convert(item, item_type, source, f"{key}.{i}", bound) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise W2SInputError(f"{where} must be a mapping, got {value!r}")
        _, item_type = typing.get_args(tp)
        return {str(k): _convert(v, item_type, source, f"{key}.{k}", bound) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(value, tp, source, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise W2SInputError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise W2SInputError(f"{where} must be an integer, got {value!r}")
        return _bounded(value, bound, where)
    if tp is float:
        # YAML 1.1 reads `5e-5` (no dot) as a string: accept any text that is a number.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise W2SInputError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise W2SInputError(f"{where} must be a finite number, got {value!r}")
        return float(_bounded(value, bound, where))
    if tp is str:
        if not isinstance(value, str):
            raise W2SInputError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported type hint {tp!r} at {key}")


def _bounded(value: float, bound: float, where: str) -> float:
    def shown(number: float) -> str:
        return str(int(number)) if float(number).is_integer() and abs(number) < 1e16 else f"{number:g}"

    if value > bound:
        raise W2SInputError(f"{where} must be at most {shown(bound)}, got {shown(value)}")
    if value < -MAX_NUMBER:
        raise W2SInputError(f"{where} must be at least {shown(-MAX_NUMBER)}, got {shown(value)}")
    return value


def _convert_dataclass(value: Any, cls: type, source: str, key: str) -> Any:
    where = f"{source}: '{key}'" if key else source
    if not isinstance(value, dict):
        raise W2SInputError(f"{where} must be a mapping, got {value!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for name in value:
        if name not in fields:
            full = f"{key}.{name}" if key else str(name)
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys: {', '.join(fields)}"
            raise W2SInputError(f"{source}: unknown key '{full}'{hint}")
    kwargs = {}
    for name, f in fields.items():
        full = f"{key}.{name}" if key else name
        if name in value:
            kwargs[name] = _convert(value[name], hints[name], source, full, f.metadata.get("max", MAX_NUMBER))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise W2SInputError(f"{source}: missing required key '{full}'")
    return cls(**kwargs)


def reference() -> str:
    """The schema as markdown tables, one per block: key, type, default and help (the reference of docs/recipes.md).

    Example:

    ```python
    >>> from w2s_align.recipe_yaml import reference
    >>> print(reference().splitlines()[0])
    ### Top level (`Recipe`)
    ```
    """
    sections = [
        ("", Recipe),
        ("data.", DataConfig),
        ("data.synthetic.", SyntheticSettings),
        ("training. / ladder[i].training.", TrainingSettings),
        ("training.lora.", LoraSettings),
        ("ladder[i].", RungConfig),
        ("ladder[i].generative.", GenerativeSettings),
        ("pairs[i].", PairConfig),
        ("pairs[i].ensemble.", EnsembleConfig),
        ("probe.", ProbeSettings),
        ("loss.", StudentLossSettings),
        ("dpo.", DPOSettings),
        ("conflicts.", ConflictConfig),
        ("conflicts.helpful.", HelpfulDataConfig),
        ("analysis.", AnalysisConfig),
        ("tracking.", TrackingConfig),
        ("hub.", HubConfig),
    ]
    blocks = []
    for prefix, cls in sections:
        hints = typing.get_type_hints(cls)
        title = f"`{prefix}`" if prefix else "Top level"
        lines = [f"### {title} (`{cls.__name__}`)", "", "| key | type | default | meaning |", "| --- " * 4 + "|"]
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = repr(f.default)
            elif f.default_factory is dataclasses.MISSING:
                default = "required"
            else:
                value = f.default_factory()
                default = "(see below)" if dataclasses.is_dataclass(value) else repr(value)
            lines.append(f"| `{f.name}` | {_describe(hints[f.name])} | {default} | {f.metadata.get('help', '')} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# What a recipe's and a rung's names may hold: they become parts of file and directory names (stages, predictions,
# labels, the default output directory), which must stay inside the run directory.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


# Stage and prediction names are built from rung names (`<strong>.from-<weak>-via-<rung>.<method>.seed<k>`,
# `<rung>-<task tag>.gt.seed<k>`, `<rung>+<rung>x<size>-probability`); a rung name that cannot hold these separators
# and words keeps every built name one spec's, so that no two experiments share a stage or a predictions file.
_RESERVED_WORDS = ("via", "probability", *(info.tag for info in REGISTRY.values()))


def rung_name_problem(name: str) -> str | None:
    """Why `name` cannot name a rung (it could make two stage names one), or None.

    ```python
    >>> rung_name_problem("qwen2.5-0.5b") is None
    True
    >>> rung_name_problem("w-via-m")
    "'via' is a word of stage names ('<strong>.from-<weak>-via-<rung>'); rename it"
    ```
    """
    words = re.split(r"[-.]", name)
    reserved = next((word for word in words if word in _RESERVED_WORDS), None)
    if reserved == "via":
        return "'via' is a word of stage names ('<strong>.from-<weak>-via-<rung>'); rename it"
    if reserved:
        return f"{reserved!r} is a word of stage names (a model's task tag or an ensemble's rule); rename it"
    if "+" in name:
        return "'+' joins the rungs of an ensemble in stage names; rename it"
    if re.search(r"\.(?!\d)", name):
        return (
            "a '.' separates the parts of stage names, so in a rung name it must come before a digit (as in 'qwen2.5')"
        )
    if re.search(r"x\d+$", name):
        return "a trailing 'x<number>' is an ensemble's size in stage names; rename it"
    return None


def _complete(recipe: Recipe) -> None:
    """Fill in what a recipe leaves to its defaults and the checks need: every rung below the strongest paired with it
    when `pairs` is left out."""
    names = [rung.name for rung in recipe.ladder]
    if recipe.pairs is None and len(names) >= 2:
        recipe.pairs = [PairConfig(weak=name, strong=names[-1]) for name in names[:-1]]


def _check(recipe: Recipe, source: str) -> None:
    """Cross-field checks: the ladder, the pairs and the methods must fit together. Changes nothing."""
    _check_names(recipe, source)
    _check_pairs(recipe, source)
    _check_rungs(recipe, source)
    _check_runs(recipe, source)
    _check_conflicts(recipe, source)
    _check_task_data(recipe, source)


def _check_task_data(recipe: Recipe, source: str) -> None:
    """A classification task only for `task: classify`; what reads preference pairs (conflicts, generative finetuning
    on a pair's texts) only for the pair tasks."""
    if recipe.task != "classify":
        if recipe.data.source in CLASSIFICATION_SOURCES:
            raise W2SInputError(
                f"{source}: 'data.source': {recipe.data.source!r} is a classification source (a text and a label per "
                f"example); set task: classify, or name a source of preference pairs ({', '.join(PAIR_SOURCES)})"
            )
        return
    pair_features = {
        "conflicts.settings": recipe.conflicts.settings != ["none"],
        "conflicts.checks": bool(recipe.conflicts.checks),
    }
    for key, used in pair_features.items():
        if used:
            raise W2SInputError(
                f"{source}: '{key}': a conflict rewards preferring the other response of a preference pair; task: "
                "classify has no pair (leave conflicts out)"
            )
    for rung in recipe.ladder:
        if rung.generative.epochs:
            raise W2SInputError(
                f"{source}: 'ladder.{rung.name}.generative': generative finetuning reads a pair's prompt and "
                "responses; task: classify does not run it"
            )


def _check_names(recipe: Recipe, source: str) -> None:
    """A ladder of distinctly named rungs, each name usable in file names."""
    if not recipe.ladder:
        raise W2SInputError(f"{source}: 'ladder' needs at least two rungs (a weak and a strong model)")
    for key, name in [("name", recipe.name)] + [
        (f"ladder.{i}.name", rung.name) for i, rung in enumerate(recipe.ladder)
    ]:
        if not SAFE_NAME.fullmatch(name) or ".." in name:
            raise W2SInputError(
                f"{source}: '{key}' is {name!r}: a name becomes part of file names, so it takes letters, digits, "
                "'.', '_', '-' and '+' only (not starting with '.' or '-')"
            )
    for index, rung in enumerate(recipe.ladder):
        if problem := rung_name_problem(rung.name):
            raise W2SInputError(f"{source}: 'ladder.{index}.name' is {rung.name!r}: {problem}")
    names = [rung.name for rung in recipe.ladder]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise W2SInputError(f"{source}: 'ladder' has duplicate rung names {duplicates}")


def _check_pairs(recipe: Recipe, source: str) -> None:
    """Each pair of rungs: both rungs of the ladder and distinct, its bootstrapping chain and ensemble, its probes."""
    names = [rung.name for rung in recipe.ladder]
    if recipe.pairs is None:  # left out, with fewer than two rungs to pair
        raise W2SInputError(f"{source}: 'ladder' needs at least two rungs (a weak and a strong model)")
    for index, pair in enumerate(recipe.pairs):
        for role in ("weak", "strong"):
            if getattr(pair, role) not in names:
                raise W2SInputError(
                    f"{source}: 'pairs.{index}.{role}' is {getattr(pair, role)!r}, which is not a rung; rungs: {names}"
                )
        if pair.weak == pair.strong:
            raise W2SInputError(f"{source}: 'pairs.{index}' pairs the rung {pair.weak!r} with itself")
        for position, name in enumerate(pair.via):
            if name not in names:
                raise W2SInputError(f"{source}: 'pairs.{index}.via.{position}' is {name!r}, which is not a rung")
            if name in (pair.weak, pair.strong) or pair.via.count(name) > 1:
                raise W2SInputError(f"{source}: 'pairs.{index}.via' repeats the rung {name!r}")
        if pair.ensemble is not None:
            _check_ensemble(recipe, pair, source, f"pairs.{index}.ensemble", names)
        probes = [f for f in (pair.label_filters or recipe.label_filters) if FilterSetting.named(f).kind == "probe"]
        if probes and recipe.rung(pair.strong).random_init:
            raise W2SInputError(
                f"{source}: 'pairs.{index}' cleans labels with {probes[0]!r}, a probe on the strong rung's pretrained "
                f"features, but {pair.strong!r} is a random_init rung: it has none"
            )


def _check_rungs(recipe: Recipe, source: str) -> None:
    """Each rung's own settings: quantization, random initialisation, chat template, layers, training."""
    for index, rung in enumerate(recipe.ladder):
        if rung.training.load_in_4bit and rung.training.lora is None:
            raise W2SInputError(
                f"{source}: 'ladder.{index}.training.load_in_4bit' needs 'lora' (QLoRA trains adapters)"
            )
        if rung.random_init and (rung.training.lora is not None or (recipe.task == "dpo" and not recipe.dpo.sft)):
            # Its weights exist only in its trained stages: LoRA adapters, or a DPO reference without SFT, would need
            # the untrained weights again.
            raise W2SInputError(
                f"{source}: 'ladder.{index}.random_init' trains every weight: it takes neither 'lora' nor, for DPO, "
                "'dpo.sft: false'"
            )
        template = rung.chat_template_path
        if template and (template.endswith(JINJA_SUFFIXES) or Path(template).expanduser().is_file()):
            read_chat_template_file(template, f"{source}: 'ladder.{index}.chat_template_path' {template}")
        if rung.num_layers is not None and rung.num_layers < 1:
            raise W2SInputError(f"{source}: 'ladder.{index}.num_layers' must be at least 1, got {rung.num_layers}")
        if rung.training.logging_steps <= 0:
            raise W2SInputError(
                f"{source}: 'ladder.{index}.training.logging_steps' must be above 0, got {rung.training.logging_steps}"
            )
        fraction = rung.training.validation_fraction
        if not 0 <= fraction < 1:
            raise W2SInputError(
                f"{source}: 'ladder.{index}.training.validation_fraction' must be in [0, 1), got {fraction}"
            )
        for key in rung.training.trainer_kwargs:
            if key in OWNED_TRAINER_FIELDS:
                raise W2SInputError(
                    f"ladder rung {rung.name!r}: training.trainer_kwargs.{key} is set by {OWNED_TRAINER_FIELDS[key]}"
                )
        eval_strategy = rung.training.trainer_kwargs.get("eval_strategy", "no")
        if fraction == 0 and eval_strategy != "no":
            raise W2SInputError(
                f"{source}: 'ladder.{index}.training.trainer_kwargs.eval_strategy' is {eval_strategy!r}, but there is "
                "no validation split to evaluate: set 'training.validation_fraction'"
            )


def _check_runs(recipe: Recipe, source: str) -> None:
    """Methods, seeds, and the data's sizes and evaluation split."""
    if not recipe.methods:
        raise W2SInputError(f"{source}: 'methods' must name at least one of {', '.join(STUDENT_LOSSES)}")
    if not recipe.seeds:
        raise W2SInputError(f"{source}: 'seeds' must hold at least one seed")
    for size_key in ("gt_size", "w2s_size", "test_size"):
        size = getattr(recipe.data, size_key)
        if size is not None and size <= 0:
            raise W2SInputError(f"{source}: 'data.{size_key}' must be positive, got {size}")
    if recipe.data.evaluate_on == "validation" and not recipe.data.validation_size:
        raise W2SInputError(f"{source}: 'data.evaluate_on: validation' needs 'data.validation_size' (pairs held out)")
    if recipe.data.evaluate_on == "test" and recipe.data.validation_size is not None:
        raise W2SInputError(
            f"{source}: 'data.validation_size' holds pairs out for 'data.evaluate_on: validation', but it is 'test'"
        )
    if recipe.data.validation_size is not None and recipe.data.validation_size <= 0:
        raise W2SInputError(f"{source}: 'data.validation_size' must be positive, got {recipe.data.validation_size}")


def _check_conflicts(recipe: Recipe, source: str) -> None:
    """The conflicts, the checks and the label filters, and the loss's and filter's ranges."""
    conflicts = recipe.conflicts
    if not conflicts.settings:
        raise W2SInputError(f"{source}: 'conflicts.settings' must name at least one of {', '.join(CONFLICT_KINDS)}")
    if "explicit" in conflicts.settings and not conflicts.alphas:
        raise W2SInputError(f"{source}: 'conflicts.alphas' must hold at least one strength")
    if "implicit" in conflicts.settings and not conflicts.ratios:
        raise W2SInputError(f"{source}: 'conflicts.ratios' must hold at least one ratio")
    if any(ratio <= 0 for ratio in conflicts.ratios):
        raise W2SInputError(f"{source}: 'conflicts.ratios' must be positive")
    if any(alpha <= 0 for alpha in conflicts.alphas):  # 0 is the twin again; a negative one reverses the conflict
        raise W2SInputError(f"{source}: 'conflicts.alphas' must be positive, got {conflicts.alphas}")
    for index, pair in enumerate(recipe.pairs):
        if pair.methods is not None and not pair.methods:
            raise W2SInputError(f"{source}: 'pairs.{index}.methods' must name at least one method (or be left out)")
        if pair.conflicts is not None:
            outside = [kind for kind in pair.conflicts if kind not in conflicts.settings]
            if not pair.conflicts or outside:
                raise W2SInputError(
                    f"{source}: 'pairs.{index}.conflicts' must name some of conflicts.settings "
                    f"({', '.join(conflicts.settings)}) or be left out, got {pair.conflicts}"
                )
    _check_checks(conflicts, recipe.controls, source)
    for method in conflicts.methods or []:
        if method not in recipe.methods_used:
            raise W2SInputError(f"{source}: 'conflicts.methods' names {method!r}, which no pair's methods hold")
    if not recipe.label_filters:
        raise W2SInputError(f"{source}: 'label_filters' must name at least one of {', '.join(LABEL_FILTERS)}")
    if not 0.5 <= recipe.filter_threshold < 1:
        raise W2SInputError(f"{source}: 'filter_threshold' must be in [0.5, 1)")
    if not 0 <= recipe.loss.aux_warmup_frac <= 1:
        raise W2SInputError(f"{source}: 'loss.aux_warmup_frac' must be between 0 and 1")
    _check_ranges(recipe, source)


# Range rules of numeric settings: (test, what the message says it must be).
_POSITIVE = (lambda v: v > 0, "positive")
_AT_LEAST_ONE = (lambda v: v >= 1, "at least 1")
_NOT_NEGATIVE = (lambda v: v >= 0, "0 or more")
_TRAINING_RANGES = {
    "learning_rate": _POSITIVE,
    "num_train_epochs": _POSITIVE,
    "per_device_train_batch_size": _AT_LEAST_ONE,
    "gradient_accumulation_steps": _AT_LEAST_ONE,
    "eval_batch_size": _AT_LEAST_ONE,
    "max_length": _AT_LEAST_ONE,
    "warmup_steps": _NOT_NEGATIVE,
    "weight_decay": _NOT_NEGATIVE,
}


# The same rules for the trainer fields a rung's `trainer_kwargs` may set directly.
_TRAINER_RANGES = {
    **_TRAINING_RANGES,
    "per_device_eval_batch_size": _AT_LEAST_ONE,
    "max_steps": (lambda v: v == -1 or v >= 1, "-1 or at least 1"),
    "max_grad_norm": _NOT_NEGATIVE,
    "warmup_ratio": (lambda v: 0 <= v <= 1, "between 0 and 1"),
}
_TRAINER_MAXIMA = {
    **{f.name: f.metadata["max"] for f in dataclasses.fields(TrainingSettings) if "max" in f.metadata},
    "per_device_eval_batch_size": 65536,
    "max_steps": 10**7,
}


# The most checks a recipe may name.
MAX_CHECKS = 20


def _check_checks(conflicts: ConflictConfig, controls: bool, source: str) -> None:
    """`conflicts.checks`: known names, each once, with conflicted students and their controls to judge them by."""
    if len(conflicts.checks) > MAX_CHECKS:  # each is a student per conflicted student and seed
        raise W2SInputError(f"{source}: 'conflicts.checks' names {len(conflicts.checks)} checks; at most {MAX_CHECKS}")
    for index, name in enumerate(conflicts.checks):
        kind, _, share = name.partition("-") if name.startswith("deceiver") else (name, "", "")
        value = _share(share)
        # One spelling per share (`deceiver-0.5`, not `deceiver-.50`): two spellings would be two stages of one
        # student.
        valid = kind in DECEPTION_CHECKS and (kind != "deceiver" or (value is not None and share == f"{value:g}"))
        if not valid or (kind != "deceiver" and share):
            raise W2SInputError(
                f"{source}: 'conflicts.checks.{index}' is {name!r}; checks: same-seed, longer, faster, hardened, "
                "deceiver-<share> with a share in (0, 1], e.g. deceiver-0.5"
            )
    repeated = sorted({name for name in conflicts.checks if conflicts.checks.count(name) > 1})
    if repeated:
        raise W2SInputError(f"{source}: 'conflicts.checks' repeats {repeated}")
    if conflicts.checks and (not controls or conflicts.settings == ["none"]):
        raise W2SInputError(
            f"{source}: 'conflicts.checks' judges students as if they were a conflicted student against its controls: "
            "it needs an explicit or implicit conflict in conflicts.settings and controls: true"
        )


def _share(text: str) -> float | None:
    try:
        share = float(text)
    except ValueError:
        return None
    return share if 0 < share <= 1 else None


def _check_ensemble(recipe: Recipe, pair: PairConfig, source: str, key: str, names: list[str]) -> None:
    ensemble = pair.ensemble
    for position, name in enumerate(ensemble.rungs):
        if name not in names:
            raise W2SInputError(f"{source}: '{key}.rungs.{position}' is {name!r}, which is not a rung; rungs: {names}")
        if name in (pair.weak, pair.strong) or ensemble.rungs.count(name) > 1:
            raise W2SInputError(f"{source}: '{key}.rungs' repeats the rung {name!r}")
    if not 1 <= ensemble.seeds <= 1000:  # a model trained per rung and seed: beyond, a plan without an end
        raise W2SInputError(f"{source}: '{key}.seeds' must be between 1 and 1000, got {ensemble.seeds}")
    if (1 + len(ensemble.rungs)) * ensemble.seeds < 2:
        raise W2SInputError(f"{source}: '{key}' has one member: name more 'rungs' or set 'seeds' above 1")
    if pair.via:
        raise W2SInputError(
            f"{source}: '{key}': an ensemble teaches the strong rung directly, without 'via' (bootstrapping)"
        )
    if recipe.task == "dpo" and recipe.dpo.supervisor != "reward":
        raise W2SInputError(
            f"{source}: '{key}': the members' labels are combined as reward-model probabilities; with task: dpo set "
            "'dpo.supervisor: reward'"
        )


def _check_ranges(recipe: Recipe, source: str) -> None:
    """Values that would crash a stage later, or make it train on nothing, stop the run now."""
    checks: list[tuple[str, Any, tuple]] = [(f"seeds.{i}", seed, _NOT_NEGATIVE) for i, seed in enumerate(recipe.seeds)]
    repeated = sorted({seed for seed in recipe.seeds if recipe.seeds.count(seed) > 1})
    if repeated:  # the same models twice, counted as two seeds by every interval
        raise W2SInputError(f"{source}: 'seeds' repeats {repeated}: each seed trains the same models again")
    checks += [
        ("data.seed", recipe.data.seed, _NOT_NEGATIVE),
        ("conflicts.helpful.seed", recipe.conflicts.helpful.seed, _NOT_NEGATIVE),
    ]
    weights = recipe.data.synthetic.kind_weights
    unknown = sorted(set(weights) - set(SYNTHETIC_KINDS))
    if unknown:
        raise W2SInputError(f"{source}: 'data.synthetic.kind_weights' names {unknown}; kinds: {list(SYNTHETIC_KINDS)}")
    for kind, weight in weights.items():
        if not weight >= 0:
            raise W2SInputError(f"{source}: 'data.synthetic.kind_weights.{kind}' must be 0 or more, got {weight!r}")
    if weights and not sum(weights.values()) > 0:
        raise W2SInputError(f"{source}: 'data.synthetic.kind_weights' must give some kind a weight above 0")
    # The recipe-wide block first, so that a value set there is named there.
    blocks = [("training", recipe.training)] + [
        (f"ladder.{i}.training", r.training) for i, r in enumerate(recipe.ladder)
    ]
    for prefix, settings in blocks:
        checks += [(f"{prefix}.{key}", getattr(settings, key), rule) for key, rule in _TRAINING_RANGES.items()]
        for key, value in settings.trainer_kwargs.items():  # the same rules where a trainer field is set directly
            if isinstance(value, str) and _NUMBER.fullmatch(value):  # YAML 1.1 reads `1e3` as text; TRL would not
                number = float(value)
                value = settings.trainer_kwargs[key] = int(number) if number.is_integer() else number
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and not math.isfinite(value):
                raise W2SInputError(
                    f"{source}: '{prefix}.trainer_kwargs.{key}' must be a finite number, got {value!r}"
                )
            if number:
                _bounded(value, _TRAINER_MAXIMA.get(key, MAX_NUMBER), f"{source}: '{prefix}.trainer_kwargs.{key}'")
            if number and key in _TRAINER_RANGES:
                checks.append((f"{prefix}.trainer_kwargs.{key}", value, _TRAINER_RANGES[key]))
    checks += [
        (
            "analysis.n_bootstrap",
            recipe.analysis.n_bootstrap,
            (lambda v: v == 0 or v >= MIN_BOOTSTRAP, f"0 (no intervals) or at least {MIN_BOOTSTRAP}"),
        ),
        ("analysis.confidence", recipe.analysis.confidence, (lambda v: 0 < v < 1, "between 0 and 1 (exclusive)")),
        ("analysis.threshold", recipe.analysis.threshold, (lambda v: 0.5 <= v < 1, "in [0.5, 1)")),
        ("loss.aux_coef", recipe.loss.aux_coef, _NOT_NEGATIVE),
        ("loss.window_radius", recipe.loss.window_radius, (lambda v: 0 < v <= 0.5, "in (0, 0.5]")),
        ("probe.k", recipe.probe.k, _POSITIVE),
        ("probe.l2", recipe.probe.l2, _NOT_NEGATIVE),
        ("probe.folds", recipe.probe.folds, (lambda v: v >= 2, "at least 2")),
        ("dpo.beta", recipe.dpo.beta, _POSITIVE),
        ("dpo.sft_epochs", recipe.dpo.sft_epochs, _POSITIVE),
    ]
    for i, rung in enumerate(recipe.ladder):
        checks.append((f"ladder.{i}.generative.epochs", rung.generative.epochs, _NOT_NEGATIVE))
        if rung.generative.learning_rate is not None:
            checks.append((f"ladder.{i}.generative.learning_rate", rung.generative.learning_rate, _POSITIVE))
    for key, value, (test, requirement) in checks:
        if not test(value):
            raise W2SInputError(f"{source}: '{key}' must be {requirement}, got {value!r}")
