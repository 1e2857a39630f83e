"""The splits of a classification run (`task: classify`): examples, each a text and its ground truth.

Every split holds rows of one format:

| column | meaning |
| --- | --- |
| `id` | stable identifier (source, split and row index; a pair's id for a pair source) |
| `txt` | the text the classifier reads (the reference implementations' name) |
| `gt_label` | the ground truth, 1.0 or 0.0 (the references' `hard_label`): the ceilings' labels, the reports' truth |
| `kind` | optional: a difficulty tag (synthetic data) |

Two kinds of source:

- **A classification task** of the reference registries ([`w2s_align.classification_sources.SOURCES`]: `sciq`,
  `boolq`, `anthropic_hh`, ...), from the hub (`data.path` another hub id or a local copy), formatted by its record,
  or `text_classification`: a local file (or files, `data.files`) or hub dataset already holding `txt` and
  `hard_label`. Its `train` and `test` splits are cut as a pair source's are (`gt_size`, `w2s_size`, `test_size`,
  `evaluate_on: validation`); a training example whose text is also a test example's is dropped (said once).
- **A source of preference pairs** ([`w2s_align.data.SOURCES`]: `synthetic`, `hh_single_turn`, local pair files,
  ...), turned into classification as the references turn Anthropic HH into it: one response of each pair, with its
  prompt, labelled 1 if it is the preferred one. The pairs are cut and checked as a pair run's are; the response shown
  is drawn by the data seed and the pair's id ([`w2s_align.data.random_orientation`], the same draw that orders a pair
  run's training pairs), so about half the examples of every split are the preferred response.

Example:

```python
>>> from w2s_align.classification_data import load_classification_splits
>>> from w2s_align.recipe import DataConfig
>>> splits = load_classification_splits(DataConfig(source="synthetic", gt_size=60, w2s_size=60, test_size=40))
>>> {name: split.num_rows for name, split in splits.items()}, splits["test"].column_names
({'gt': 60, 'w2s': 60, 'test': 40}, ['id', 'txt', 'gt_label', 'kind'])
```
"""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict

from .classification_sources import SOURCES, TEXT, format_rows
from .data import (
    GT_LABEL,
    TRAINING_SPLITS,
    cut_splits,
    load_splits,
    random_orientation,
    read_data_file,
    saved_to_disk,
    validation_as_test,
)
from .errors import W2SInputError, first_line
from .options import HARD_LABEL, PAIR_SOURCES, SPLITS
from .recipe import DataConfig

logger = logging.getLogger(__name__)

EXAMPLE_COLUMNS = ("id", TEXT, GT_LABEL)
CARRIED = ("kind",)
LOCAL = "text_classification"


def load_classification_splits(config: DataConfig) -> DatasetDict:
    """The `gt`, `w2s` and `test` splits of classification examples for `config` (see the module docstring).

    Raises:
        W2SInputError: a source that cannot be loaded, a missing column, a label other than 0 or 1, a split that is
            empty or too small.
    """
    if config.source in PAIR_SOURCES:
        splits = _from_pairs(config)
    else:
        splits = cut_splits(_load_examples(config), config)
        if config.evaluate_on == "validation":
            splits = validation_as_test(splits, config)
        splits = _without_test_texts(splits)
    for split in SPLITS:
        if splits[split].num_rows == 0:
            raise W2SInputError(f"data: the {split} split is empty")
    return splits


def _from_pairs(config: DataConfig) -> DatasetDict:
    """A pair run's splits (cut and checked as such), one response of each pair shown: the first of its seeded
    orientation, labelled by whether it is the preferred one."""
    pairs = load_splits(config)  # the training splits come in a seeded random order, with their `gt_label`
    pairs["test"] = random_orientation(pairs["test"], config.seed)

    def example(row: dict) -> dict:
        return {TEXT: row["prompt"] + row["chosen"]}

    out = {}
    for split, rows in pairs.items():
        keep = [column for column in (*EXAMPLE_COLUMNS, *CARRIED) if column in rows.column_names or column == TEXT]
        out[split] = rows.map(example, desc=f"One response of each {split} pair").select_columns(keep)
    return DatasetDict(out)


def _load_examples(config: DataConfig) -> dict[str, Dataset]:
    """The source's own splits (`train` and `test`, or those `data.files` / `data.split_names` name), formatted as
    `id`, `txt`, `gt_label` (and `kind`)."""
    if config.source == LOCAL:
        raw = _local_or_hub(config)
        return {split: _as_examples(rows, split, str(config.path or config.files)) for split, rows in raw.items()}
    source = SOURCES[config.source]
    hub_id = config.path or source.path
    names = config.split_names or source.splits
    try:
        if config.path and saved_to_disk(Path(config.path).expanduser()):
            loaded = datasets.load_from_disk(str(Path(config.path).expanduser()))
        else:
            loaded = datasets.load_dataset(hub_id, name=config.config_name or source.config, data_dir=config.data_dir)
    except Exception as error:  # datasets raises many types for a dataset it cannot find or read
        raise W2SInputError(f"data.path: cannot load dataset {hub_id!r}: {first_line(error)}") from None
    out = {}
    for role, name in names.items():
        if name not in loaded:
            raise W2SInputError(f"data.split_names.{role}: {hub_id!r} has no split {name!r} ({', '.join(loaded)})")
        try:
            formatted = format_rows(config.source, loaded[name], config.seed, role)
        except KeyError as error:
            raise W2SInputError(
                f"{hub_id}[{name}]: no column {error} for source {config.source!r}; found {loaded[name].column_names}"
            ) from None
        out[role] = _as_examples(formatted, role, f"{hub_id}[{name}]")
    return out


def _local_or_hub(config: DataConfig) -> dict[str, Dataset]:
    """`text_classification` rows: `data.files` by split, a local file (one pool), a dataset saved with
    `save_to_disk`, or a hub dataset."""
    if config.files:
        return {split: read_data_file(Path(path).expanduser()) for split, path in config.files.items()}
    if not config.path:
        raise W2SInputError(f"data.path: the {LOCAL} source reads the file or dataset data.path or data.files names")
    path = Path(config.path).expanduser()
    if path.is_file():
        return {"all": read_data_file(path)}
    try:
        if saved_to_disk(path):
            loaded = datasets.load_from_disk(str(path))
            loaded = loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})
        else:
            loaded = datasets.load_dataset(config.path, name=config.config_name, data_dir=config.data_dir)
    except Exception as error:  # as above
        raise W2SInputError(f"data.path: cannot load dataset {config.path!r}: {first_line(error)}") from None
    names = config.split_names or {split: split for split in ("train", "test") if split in loaded}
    return {role: loaded[name] for role, name in names.items()}


def _as_examples(rows: Dataset, split: str, where: str) -> Dataset:
    """Rows with `txt` and `hard_label` (0 or 1) as `id`, `txt`, `gt_label` (a float, as a pair's)."""
    missing = [column for column in (TEXT, HARD_LABEL) if column not in rows.column_names]
    if missing:
        raise W2SInputError(f"{where}: missing column(s) {missing}; found {rows.column_names}")
    labels = set(rows.unique(HARD_LABEL))
    if not labels <= {0, 1}:
        raise W2SInputError(f"{where}: {HARD_LABEL} must be 0 or 1, found {sorted(labels - {0, 1}, key=str)[:5]}")
    if "id" not in rows.column_names:
        rows = rows.add_column("id", [f"{split}-{index}" for index in range(rows.num_rows)])
    carried = [column for column in CARRIED if column in rows.column_names]
    rows = rows.select_columns(["id", TEXT, HARD_LABEL, *carried]).cast_column("id", datasets.Value("string"))
    rows = rows.add_column(GT_LABEL, [float(label) for label in rows[HARD_LABEL]]).remove_columns(HARD_LABEL)
    return rows.select_columns(["id", TEXT, GT_LABEL, *carried])


def _without_test_texts(splits: DatasetDict) -> DatasetDict:
    """The training splits without the examples whose text is a test example's (hub tasks repeat some texts across
    their splits): a model would be scored on what it learned."""
    test = set(splits["test"][TEXT])
    out = dict(splits)
    for split in TRAINING_SPLITS:
        kept = splits[split].filter(lambda row: row[TEXT] not in test, desc=f"Test texts out of {split}")
        if kept.num_rows < splits[split].num_rows:
            dropped = splits[split].num_rows - kept.num_rows
            logger.warning(f"warning: data: dropped {dropped} {split} examples whose text is also a test example's")
        out[split] = kept
    return DatasetDict(out)
