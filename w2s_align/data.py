"""Data sources: preference pairs from the hub, local files or the synthetic generator, cut into three splits.

Every source yields rows of one normalised format:

| column | meaning |
| --- | --- |
| `id` | stable identifier (source split and row index, or a content hash for synthetic pairs) |
| `prompt` | the conversation up to and including the last `Assistant:` turn marker (may be empty) |
| `chosen`, `rejected` | the two responses; `chosen` is preferred on the target dimension (harmlessness) |
| `helpful_label` | optional: 1 when `chosen` is also the more helpful response, 0 when `rejected` is |
| `kind` | optional: a difficulty tag (synthetic data) |
| `prompt_messages`, `chosen_messages`, `rejected_messages` | conversational rows only: their messages |

Conversational rows (TRL's conversational preference format: lists of messages) keep their messages, and their text
columns hold a plain rendering (`\n\nHuman: ...\n\nAssistant: ...`, as HH-RLHF writes dialogues). Each rung renders
them again with its tokenizer's chat template where it has one ([`render_chat`], called by the tasks), so every model
reads the conversation in its own format; a rung without a template reads the plain rendering.

In the training splits (`gt`, `w2s`) each pair's two responses are then stored in a seeded random order
([`random_orientation`]): `chosen` is just the first response there, and `gt_label` (1.0 or 0.0) is the ground
truth's probability that it is the preferred one. Nothing downstream can read the ground truth from the order of a
pair: a weak label is the labeller's own, and only the ceilings (which train on `gt_label`) and the reports read it.
The `test` split keeps `chosen` = the preferred response, so predictions are defined against the ground truth.

Each source is one [`Source`] record in `SOURCES` (its normaliser, default hub id, local file layout, required columns
and the rows it keeps); `data.source` in a recipe names one. [`load_splits`] returns a `DatasetDict` with the
disjoint splits `gt` (ground truth for the ceilings), `w2s` (the pairs the weak model labels and the student learns
from) and `test`.

Example:

```python
>>> from w2s_align.data import load_splits
>>> from w2s_align.recipe import DataConfig
>>> splits = load_splits(DataConfig(source="synthetic", gt_size=100, w2s_size=100, test_size=50))
>>> {name: split.num_rows for name, split in splits.items()}
{'gt': 100, 'w2s': 100, 'test': 50}
```
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from datasets import Dataset, DatasetDict, Value

from .errors import W2SInputError, first_line
from .options import PAIR_SOURCES, SOFT_LABEL, SPLITS
from .prompts import split_implicit_prompt
from .recipe import DataConfig, HelpfulDataConfig
from .synthetic import generate_pairs

logger = logging.getLogger(__name__)

TRAINING_SPLITS = ("gt", "w2s")
GT_LABEL = "gt_label"
ASSISTANT = "\n\nAssistant:"
HUMAN = "\n\nHuman:"
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet", ".csv", ".csv.gz")
TEXT_COLUMNS = ("prompt", "chosen", "rejected")
MESSAGE_COLUMNS = ("prompt_messages", "chosen_messages", "rejected_messages")
# How the plain rendering names each role (others are capitalised).
ROLE_NAMES = {"user": "Human", "assistant": "Assistant", "system": "System"}


def split_dialogue(text: str) -> tuple[str, str]:
    """Cut an HH-RLHF dialogue into the prompt (through the last `Assistant:` marker) and the final response."""
    cut = text.rfind(ASSISTANT)
    if cut < 0:
        return "", text
    cut += len(ASSISTANT)
    return text[:cut], text[cut:]


def _normalise_hh(example: dict, index: int, split: str) -> dict:
    prompt, chosen = split_dialogue(example["chosen"])
    rejected_prompt, rejected = split_dialogue(example["rejected"])
    if rejected_prompt != prompt:
        # The two dialogues diverge before the final turn: keep their common history as the prompt.
        common = 0
        for a, b in zip(example["chosen"], example["rejected"]):
            if a != b:
                break
            common += 1
        cut = example["chosen"].rfind(ASSISTANT, 0, common)
        cut = cut + len(ASSISTANT) if cut >= 0 else 0
        prompt, chosen, rejected = example["chosen"][:cut], example["chosen"][cut:], example["rejected"][cut:]
    return {"id": f"{split}-{index:06d}", "prompt": prompt, "chosen": chosen, "rejected": rejected}


def _normalise_pku(example: dict, index: int, split: str) -> dict:
    safer = int(example["safer_response_id"])
    better = int(example["better_response_id"])
    responses = (example["response_0"], example["response_1"])
    return {
        "id": f"{split}-{index:06d}",
        "prompt": f"{HUMAN} {example['prompt']}{ASSISTANT}",
        "chosen": " " + responses[safer],
        "rejected": " " + responses[1 - safer],
        "helpful_label": int(better == safer),
    }


def _messages(value: object, column: str) -> list[dict[str, str]]:
    """`value` as a list of `{"role", "content"}` messages with text contents; a `ValueError` saying why otherwise."""
    if not isinstance(value, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        raise ValueError(
            f"'{column}' is not a list of messages with text 'role' and 'content' (TRL's conversational format; a "
            f"pair is all text or all messages), got {str(value)[:120]!r}"
        )
    return [{"role": m["role"], "content": m["content"]} for m in value]


def render_plain(prompt: list[dict[str, str]], response: list[dict[str, str]]) -> tuple[str, str]:
    """A conversation as HH-RLHF writes it: the prompt's turns then `\n\nAssistant:`, and the response after it."""

    def turns(messages: list[dict[str, str]]) -> str:
        return "".join(f"\n\n{ROLE_NAMES.get(m['role'], m['role'].capitalize())}: {m['content']}" for m in messages)

    text = turns(response)
    return turns(prompt) + ASSISTANT, text[len(ASSISTANT) :] if text.startswith(ASSISTANT) else text


def render_chat(row: dict, tokenizer) -> dict[str, str]:
    """A conversational pair's text columns rendered by `tokenizer`'s chat template (TRL's `apply_chat_template`: the
    prompt with its generation prompt, each response as what the template adds after it)."""
    from trl.data_utils import apply_chat_template

    messages = dict(zip(TEXT_COLUMNS, (row[column] for column in MESSAGE_COLUMNS)))
    return apply_chat_template(messages, tokenizer)


def swap_responses(row: dict) -> dict:
    """The columns of `row` that change when its two responses trade places (messages included)."""
    swapped = {"chosen": row["rejected"], "rejected": row["chosen"]}
    if "chosen_messages" in row:
        swapped.update(chosen_messages=row["rejected_messages"], rejected_messages=row["chosen_messages"])
    return swapped


def _normalise_preference(example: dict, index: int, split: str) -> dict:
    """TRL's preference formats: standard (texts) or conversational (lists of messages), with an explicit `prompt`
    or an implicit one (`chosen` and `rejected` hold the whole conversations, and their common start becomes the
    prompt: [`split_implicit_prompt`])."""
    if not example.get("prompt"):
        example = {**example, **split_implicit_prompt(example["chosen"], example["rejected"])}
    row = {"id": str(example["id"]) if example.get("id") is not None else f"{split}-{index:06d}"}
    if isinstance(example["chosen"], list):
        messages = {f"{c}_messages": _messages(example[c] or [], c) for c in TEXT_COLUMNS}
        _check_roles(messages)
        row["prompt"], row["chosen"] = render_plain(messages["prompt_messages"], messages["chosen_messages"])
        row["rejected"] = render_plain(messages["prompt_messages"], messages["rejected_messages"])[1]
        row.update(messages)
    else:
        if not isinstance(example["prompt"], str):
            got = str(example["prompt"])[:80]
            raise ValueError(
                f"'prompt' must be text as the responses are (a pair is all text or all messages), got {got!r}"
            )
        row.update({column: example[column] for column in TEXT_COLUMNS})
    for column in ("chosen", "rejected"):
        if not row[column].strip():
            raise ValueError(f"'{column}' is empty")
    label = example.get("helpful_label")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int | float) or not 0 <= label <= 1):
        raise ValueError(
            f"'helpful_label' must be a number in [0, 1] (1: 'chosen' is the more helpful), got {label!r}"
        )
    if example.get("kind") is not None and not isinstance(example["kind"], str):
        raise ValueError(f"'kind' must be text (a name of the pair's kind), got {example['kind']!r}")
    for optional in ("helpful_label", "kind"):
        if optional in example and example[optional] is not None:
            row[optional] = example[optional]
    return row


def _check_roles(messages: dict[str, list[dict[str, str]]]) -> None:
    """A conversation's roles as TRL's conversational format has them: the responses the assistant's, the prompt
    ending where the assistant answers."""
    prompt = messages["prompt_messages"]
    if not prompt or prompt[-1]["role"] == "assistant":
        raise ValueError(
            "the prompt's messages must end with a turn the assistant answers (its last role is not 'assistant')"
        )
    for column in ("chosen_messages", "rejected_messages"):
        roles = sorted({m["role"] for m in messages[column]} - {"assistant"})
        if roles:
            response = column.removesuffix("_messages")
            raise ValueError(f"'{response}' holds messages of the role(s) {roles}: a response is the assistant's")


# Where a source's own `id` column waits while it is normalised, when its values are not all text.
SOURCE_ID = "__source_id"


def _normalise_row(example: dict, index: int, split: str, source: Source, where: str) -> dict:
    """`source.normalise(example, ...)`, with one clear error naming the file (or hub split) and row of a row that is
    not a pair: responses that are not text (null, numbers; lists of messages only for a conversational source)."""
    conversational = source.conversational and isinstance(example.get("chosen"), list)
    for column in ("chosen", "rejected"):
        value = example.get(column)
        if column in example and not isinstance(value, list if conversational else str):
            kind = "a list of messages, as 'chosen' is" if conversational else "text"
            raise W2SInputError(f"{where}, row {index}: '{column}' must be {kind}, got {repr(value)[:80]}")
    if SOURCE_ID in example:
        example = {**example, "id": example.pop(SOURCE_ID)}
    try:
        return source.normalise(example, index, split)
    except (ValueError, TypeError, AttributeError) as error:
        raise W2SInputError(f"{where}, row {index}: not a {source.name} pair: {error}") from None


def _single_turn(row: dict) -> bool:
    return row["prompt"].count(HUMAN) == 1


@dataclass(frozen=True)
class Source:
    """One data source: where its pairs are and how a row of it becomes a normalised pair.

    Args:
        name (`str`):
            The `data.source` value that selects it.
        normalise (`Callable[[dict, int, str], dict]`, *optional*):
            Maps a raw row, its index and its split to a normalised pair. None for the generator, which makes
            normalised pairs itself.
        required_columns (`tuple[str, ...]`, *optional*, defaults to `("chosen", "rejected")`):
            Columns every file or hub split of the source must have.
        default_path (`str`, *optional*):
            Hub dataset id used when `data.path` is unset.
        local_layout (`Mapping[str, str]`, *optional*):
            File name of each split in a local copy laid out as the source ships (a directory as `data.path`).
        keep (`Callable[[dict], bool]`, *optional*):
            Normalised pairs to keep (e.g. single-turn dialogues only).
        conversational (`bool`, *optional*, defaults to `False`):
            Whether its responses may be lists of messages (TRL's conversational format) rather than text.
    """

    name: str
    normalise: Callable[[dict, int, str], dict] | None
    required_columns: tuple[str, ...] = ("chosen", "rejected")
    default_path: str | None = None
    local_layout: Mapping[str, str] | None = None
    keep: Callable[[dict], bool] | None = None
    conversational: bool = False

    @property
    def generated(self) -> bool:
        """Whether the pairs are generated by the package rather than read from files or the hub."""
        return self.normalise is None


_HH_LAYOUT = {"train": "train.jsonl.gz", "test": "test.jsonl.gz"}
SOURCES = {
    source.name: source
    for source in (
        Source("synthetic", normalise=None),
        Source("hh_rlhf", _normalise_hh, default_path="Anthropic/hh-rlhf", local_layout=_HH_LAYOUT),
        Source(
            "hh_single_turn",
            _normalise_hh,
            default_path="Anthropic/hh-rlhf",
            local_layout={
                "gt": "harmless_train_gt.jsonl.gz",
                "w2s": "harmless_train_w2s.jsonl.gz",
                "test": "harmless_test.jsonl.gz",
            },
            keep=_single_turn,
        ),
        # Single-turn HH-RLHF helpfulness pairs (helpful-base), the implicit conflict's data in Yang et al.
        Source(
            "hh_single_turn_helpful",
            _normalise_hh,
            default_path="Anthropic/hh-rlhf",
            local_layout={"train": "helpful_single_turn.jsonl.gz"},
            keep=_single_turn,
        ),
        Source(
            "pku_saferlhf",
            _normalise_pku,
            required_columns=("prompt", "response_0", "response_1", "better_response_id", "safer_response_id"),
            default_path="PKU-Alignment/PKU-SafeRLHF",
            local_layout={"train": "train.jsonl", "test": "test.jsonl"},
        ),
        # Any dataset in TRL's standard preference format, on the hub (`data.path` an id) or in local files.
        Source("preference", _normalise_preference, conversational=True),
    )
}
assert tuple(SOURCES) == PAIR_SOURCES, "options.PairSource names the sources"


def _check_json_lines(path: Path) -> None:
    """Stop at the first line of a JSON-lines file that is not a JSON object, on text that is not UTF-8, on a gzip
    file that is truncated or corrupt, and on a file with no rows."""
    opener = gzip.open if path.name.endswith(".gz") else open
    rows = 0
    try:
        with opener(path, "rb") as handle:  # bytes, decoded line by line: a bad byte is reported with its line
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise W2SInputError(f"{path}: line {number} is not UTF-8 text") from None
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as error:
                    raise W2SInputError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
                if not isinstance(value, dict):
                    raise W2SInputError(f"{path}: line {number} is not a JSON object")
                rows += 1
    except PermissionError as error:
        raise W2SInputError(f"{path}: cannot be read ({error.strerror})") from None
    except (EOFError, OSError, zlib.error) as error:  # gzip: truncated (EOFError), corrupt (BadGzipFile, zlib.error)
        raise W2SInputError(f"{path}: a truncated or corrupt gzip file ({error})") from None
    if rows == 0:
        raise W2SInputError(f"{path}: the file holds no pairs (empty split)")


def read_data_file(path: Path) -> Dataset:
    """Read one local JSONL/JSON/CSV (gzipped or not) or parquet file with `datasets`, naming the file and line on
    failure."""
    if not path.is_file():
        raise W2SInputError(f"{path}: data file not found")
    if not path.name.endswith(DATA_SUFFIXES):
        raise W2SInputError(f"{path}: unsupported data file; expected one of {', '.join(DATA_SUFFIXES)}")
    builder = next(name for name in ("parquet", "csv", "json") if f".{name}" in path.name)
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        _check_json_lines(path)
    if builder == "parquet":  # checked first: datasets logs its own error line for a file it cannot read
        check_parquet(path)
    try:
        loaded = datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as error:  # datasets raises many types for unreadable files
        raise W2SInputError(f"{path}: cannot be read as {builder}: {first_line(error)}") from None
    if builder == "csv":
        _refuse_messages_as_text(loaded, path)
    return loaded


def _refuse_messages_as_text(rows: Dataset, path: Path) -> None:
    """CSV holds no lists: conversational pairs saved as CSV arrive as the text of a list of messages, which a model
    would read character by character. Stop, naming the file and column (the first row tells: a file is written in
    one format)."""
    first = rows[0] if rows.num_rows else {}
    for column in TEXT_COLUMNS:
        if re.match(r"\s*\[\s*\{\s*['\"]role['\"]\s*:", str(first.get(column) or "")):
            raise W2SInputError(
                f"{path}, row 0: '{column}' holds a list of messages written as text (CSV keeps no lists): save "
                "conversational pairs as JSONL or parquet"
            )


def check_parquet(path: Path):
    """The metadata of the parquet file `path` (`num_rows`, ...); one line naming `path` when it is not a readable
    parquet file (cut short, or something else)."""
    import pyarrow.parquet

    try:
        return pyarrow.parquet.read_metadata(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise W2SInputError(f"{path}: not a readable parquet file ({first_line(error)})") from None


def _key(config: DataConfig | HelpfulDataConfig) -> str:
    """Where the recipe gives `config`, for its messages."""
    return "conflicts.helpful" if isinstance(config, HelpfulDataConfig) else "data"


def _local_files(config: DataConfig | HelpfulDataConfig, source: Source) -> dict[str, Path] | None:
    """The local files of each split, or None when the source is to be loaded from the hub."""
    if config.files:
        unknown = set(config.files) - {"gt", "w2s", "test", "train", "all"}
        if unknown:
            raise W2SInputError(
                f"{_key(config)}.files: unknown split names {sorted(unknown)}; use gt, w2s, test, train or all"
            )
        return {split: Path(file) for split, file in config.files.items()}
    path = Path(config.path).expanduser() if config.path else None
    if path is None or not path.exists():
        looks_local = config.path and (path.is_absolute() or config.path.startswith(".") or path.suffix)
        if looks_local or (config.path is None and source.default_path is None):
            raise W2SInputError(
                f"{_key(config)}.path: {config.path!r} does not exist (a hub dataset id or a local path)"
            )
        return None
    if path.is_file():
        return {"all": path}
    if saved_to_disk(path):
        return None  # read by `datasets.load_from_disk`, as a hub dataset is read
    layout = source.local_layout
    if layout is not None:
        if config.data_dir and (path / config.data_dir).is_dir():
            path = path / config.data_dir
        found = {split: path / name for split, name in layout.items() if (path / name).is_file()}
    else:
        found = {}
        for split in ("gt", "w2s", "test", "train"):
            # `<split>.<suffix>` in the folder, or the Hub's layout (`push_to_hub`, the run's own `labels/`):
            # `data/<split>-00000-of-00001.<suffix>`.
            shards = [path / f"{split}{suffix}" for suffix in DATA_SUFFIXES if (path / f"{split}{suffix}").is_file()]
            shards = shards or sorted(
                file for file in (path / "data").glob(f"{split}-*") if file.name.endswith(DATA_SUFFIXES)
            )
            if len(shards) > 1:
                raise W2SInputError(
                    f"{_key(config)}.path: split {split!r} of {path} is in {len(shards)} files; one is read"
                )
            if shards:
                found[split] = shards[0]
    if not found:
        expected = (
            ", ".join(layout.values())
            if layout is not None
            else f"gt, w2s, test or train files ({', '.join(DATA_SUFFIXES)}) in the folder or in its data/ (the Hub's "
            "layout), or a folder written by save_to_disk"
        )
        raise W2SInputError(
            f"{_key(config)}.path: no data files for source {config.source!r} in {path} (expected {expected})"
        )
    return found


def saved_to_disk(path: Path) -> bool:
    """Whether `path` is a folder written by `datasets`' `save_to_disk` (a `DatasetDict` or a `Dataset`)."""
    return (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()


def check_local_files(config: DataConfig | HelpfulDataConfig) -> None:
    """The checks of a source's local files that need no model: they exist, and each JSON line or parquet file reads
    (the rows are checked when the splits are loaded). Cheap, so that a run stops on them at once. A classification
    source's files are checked as they load ([`w2s_align.classification_data`])."""
    source = SOURCES.get(config.source)
    if source is None or source.generated:
        return
    for path in (_local_files(config, source) or {}).values():
        if not path.is_file():
            raise W2SInputError(f"{path}: data file not found")
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            _check_json_lines(path)
        elif path.name.endswith(".parquet"):
            check_parquet(path)


def _load_raw(config: DataConfig | HelpfulDataConfig) -> dict[str, Dataset]:
    """Load the source's own splits (`gt`/`w2s`/`test`, `train`/`test`, or `all`) as normalised datasets."""
    source = SOURCES[config.source]
    files = _local_files(config, source)
    if files is not None:
        raw = {split: (read_data_file(path), str(path)) for split, path in files.items()}
    else:
        hub_id = config.path or source.default_path
        try:
            if config.path and saved_to_disk(Path(config.path).expanduser()):
                loaded = datasets.load_from_disk(str(Path(config.path).expanduser()))
                loaded = loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})
            else:
                # `conflicts.helpful` names no configuration of a hub dataset, `data` may
                name = getattr(config, "config_name", None)
                loaded = datasets.load_dataset(hub_id, name=name, data_dir=config.data_dir)
        except Exception as error:
            raise W2SInputError(f"{_key(config)}.path: cannot load dataset {hub_id!r}: {error}") from None
        names = config.split_names or {split: split for split in ("gt", "w2s", "train", "test") if split in loaded}
        for role, name in names.items():
            if name not in loaded:
                raise W2SInputError(f"data.split_names.{role}: {hub_id!r} has no split {name!r} ({', '.join(loaded)})")
        raw = {role: (loaded[name], f"{hub_id}[{name}]") for role, name in names.items()}
    out = {}
    for split, (dataset, where) in raw.items():
        missing = [column for column in source.required_columns if column not in dataset.column_names]
        if missing:
            raise W2SInputError(
                f"{where}: missing column(s) {missing} for source {config.source!r}; found {dataset.column_names}"
            )
        first = dataset[0] if dataset.num_rows else {}
        if not source.conversational and any(isinstance(first.get(column), list) for column in TEXT_COLUMNS):
            readers = " or ".join(repr(other.name) for other in SOURCES.values() if other.conversational)
            raise W2SInputError(
                f"{where}: conversational rows (lists of messages) are read by the {readers} source, not by "
                f"{source.name!r}"
            )
        _check_one_format(dataset, source, where)
        if "id" in dataset.column_names and dataset.features["id"] != Value("string"):
            # Ids of several types (numbers and text) load as a JSON column, whose type `map` would keep for the
            # normalised `id` (turning the text "6" back into the number 6): the normalised rows name them as text.
            dataset = dataset.rename_column("id", SOURCE_ID)
        dataset = dataset.map(
            _normalise_row,
            with_indices=True,
            fn_kwargs={"split": split, "source": source, "where": where},
            remove_columns=dataset.column_names,
            desc=f"Normalising {split}",
        )
        _check_unique_ids(dataset, where)
        if source.keep is not None:
            dataset = dataset.filter(source.keep, desc=f"Keeping the pairs of {source.name}")
        out[split] = _without_identical_responses(dataset, where)
    return out


def _check_one_format(pairs: Dataset, source: Source, where: str) -> None:
    """Stop on a file that mixes text and conversational rows."""
    if source.conversational:  # before normalising: `map` would keep the first row's format for all
        formats = [isinstance(response, list) for response in pairs["chosen"]]
        if any(formats) and not all(formats):
            text, conversation = formats.index(False), formats.index(True)
            raise W2SInputError(
                f"{where}: row {text} is text and row {conversation} a conversation: a file holds one format"
            )


def _check_unique_ids(pairs: Dataset, where: str) -> None:
    """Stop on a file that gives one id to two rows (ids name the pairs in labels and predictions, and keep the splits
    disjoint)."""
    seen: dict[str, int] = {}
    for index, row_id in enumerate(pairs["id"]):
        if row_id in seen:
            raise W2SInputError(f"{where}: rows {seen[row_id]} and {index} have the same id {row_id!r}")
        seen[row_id] = index


def _without_identical_responses(pairs: Dataset, where: str) -> Dataset:
    """`pairs` without the pairs whose two responses are the same text (nothing to prefer: a pairwise loss learns
    nothing from them and every model scores them a tie); one warning line when some are dropped, an error when all
    would be."""
    kept = pairs.filter(lambda row: row["chosen"] != row["rejected"], desc="Dropping pairs with identical responses")
    dropped = pairs.num_rows - kept.num_rows
    if dropped and not kept.num_rows:
        raise W2SInputError(f"{where}: every pair's two responses are identical ('chosen' == 'rejected')")
    if dropped:
        logger.warning(f"warning: {where}: dropped {dropped} of {pairs.num_rows} pairs with identical responses")
    return kept


def _synthetic(config: DataConfig) -> dict[str, Dataset]:
    sizes = {split: getattr(config, f"{split}_size") for split in SPLITS}
    missing = [split for split, size in sizes.items() if size is None]
    if missing:
        raise W2SInputError(f"data: the synthetic source needs sizes: set {', '.join(f'{s}_size' for s in missing)}")
    weights = config.synthetic.kind_weights
    train = generate_pairs(sizes["gt"] + sizes["w2s"], seed=config.seed, pool="seen", kind_weights=weights)
    test = generate_pairs(
        sizes["test"],
        seed=config.seed + 1,
        pool=config.synthetic.test_pool,
        kind_weights=weights,
        exclude=set(train["id"]),
    )
    return {
        "gt": train.select(range(sizes["gt"])),
        "w2s": train.select(range(sizes["gt"], sizes["gt"] + sizes["w2s"])),
        "test": test,
    }


def _take(dataset: Dataset, size: int | None, seed: int, where: str) -> Dataset:
    if size is None:
        return dataset
    if size > dataset.num_rows:
        raise W2SInputError(f"{where}: asked for {size} pairs but only {dataset.num_rows} are available")
    return dataset.shuffle(seed=seed).select(range(size))


def cut_splits(raw: dict[str, Dataset], config: DataConfig) -> DatasetDict:
    """Cut the source's own splits into gt / w2s / test of the requested sizes."""
    sizes = {split: getattr(config, f"{split}_size") for split in SPLITS}
    if set(SPLITS) <= set(raw):
        return DatasetDict({s: _take(raw[s], sizes[s], config.seed, f"data.{s}_size") for s in SPLITS})
    if "test" in raw:
        pool = raw["train"] if "train" in raw else raw.get("all")
        parts = {"test": _take(raw["test"], sizes["test"], config.seed, "data.test_size")}
        need = ("gt", "w2s")
    else:
        pool = raw["all"] if "all" in raw else raw.get("train")
        parts, need = {}, SPLITS
    if pool is None:
        raise W2SInputError(
            f"data: source {config.source!r} gave splits {sorted(raw)}; need gt/w2s/test or train/test"
        )
    pool = pool.shuffle(seed=config.seed)
    unsized = [split for split in need if sizes[split] is None]
    if len(unsized) > 1:
        raise W2SInputError(f"data: set {' and '.join(f'{s}_size' for s in unsized)} to cut one pool into splits")
    fixed = sum(sizes[split] for split in need if sizes[split] is not None)
    if fixed > pool.num_rows:
        raise W2SInputError(f"data: the splits need {fixed} pairs but the source has only {pool.num_rows}")
    start = 0
    for split in need:
        size = sizes[split] if sizes[split] is not None else pool.num_rows - fixed
        parts[split] = pool.select(list(range(start, start + size)))  # a list: an empty range fails in datasets
        start += size
    return DatasetDict({split: parts[split] for split in SPLITS})


def validation_as_test(splits: DatasetDict, config: DataConfig) -> DatasetDict:
    """`validation_size` pairs of the ground-truth split (drawn by the data seed) become the split every model is
    evaluated on, and the test split is dropped unread: the splits of a run that makes design choices."""
    gt, size = splits["gt"], config.validation_size
    if size >= gt.num_rows:
        raise W2SInputError(
            f"data.validation_size: {size} pairs held out of a ground-truth split of {gt.num_rows} leave none to train"
        )
    order = np.random.default_rng(config.seed).permutation(gt.num_rows)
    return DatasetDict(
        {"gt": gt.select(np.sort(order[size:])), "w2s": splits["w2s"], "test": gt.select(np.sort(order[:size]))}
    )


def pair_key(prompt: str, chosen: str, rejected: str) -> str:
    """Content hash of a pair, independent of which response is preferred."""
    first, second = sorted((chosen, rejected))
    return hashlib.sha1(f"{prompt}\x00{first}\x00{second}".encode()).hexdigest()


def check_splits(splits: DatasetDict) -> None:
    """Stop on an empty split or on a pair that appears in two splits."""
    for split in SPLITS:
        if splits[split].num_rows == 0:
            raise W2SInputError(f"data: the {split} split is empty")
    owners: dict[str, tuple[str, str]] = {}
    for split in SPLITS:
        rows = splits[split]
        for row_id, prompt, chosen, rejected in zip(rows["id"], rows["prompt"], rows["chosen"], rows["rejected"]):
            key = pair_key(prompt, chosen, rejected)
            if key in owners and owners[key][0] != split:
                other_split, other_id = owners[key]
                raise W2SInputError(
                    f"data: the splits overlap: pair {row_id!r} of {split} is also {other_id!r} of {other_split}"
                )
            owners.setdefault(key, (split, row_id))


def random_orientation(pairs: Dataset, seed: int, label: str = GT_LABEL) -> Dataset:
    """`pairs` (with `chosen` preferred) with each pair's responses in a seeded random order, and a `label` column:
    1.0 where `chosen` is still the preferred response, 0.0 where the two were swapped (`helpful_label` follows).

    A pair's order depends only on `seed` and its `id`, not on the other rows, so a subset keeps its orders.

    Example:

    ```python
    >>> from datasets import Dataset
    >>> pairs = Dataset.from_dict({"id": ["a", "b"], "prompt": ["", ""], "chosen": ["x", "y"], "rejected": ["u", "v"]})
    >>> list(random_orientation(pairs, seed=0)[GT_LABEL])
    [0.0, 1.0]
    ```
    """

    def orient(row: dict) -> dict:
        digest = hashlib.sha1(f"{seed}\x00{row['id']}".encode()).digest()
        if digest[0] % 2 == 0:
            return {label: 1.0}
        swapped = {**swap_responses(row), label: 0.0}
        if row.get("helpful_label") is not None:
            swapped["helpful_label"] = 1 - row["helpful_label"]
        return swapped

    return pairs.map(orient, desc="Storing pairs in random order")


def hub_dataset_id(config: DataConfig) -> str | None:
    """The Hub id of the dataset a recipe's pairs come from, for model cards: `data.path` when it names one, else the
    source's own Hub id (local files of a registered source are copies of it); None for generated pairs."""
    source = SOURCES[config.source]
    if source.generated:
        return None
    if config.path and not Path(config.path).expanduser().exists():
        return config.path
    return source.default_path


def ground_truth_pairs(pairs: Dataset) -> Dataset:
    """Training pairs with their ground truth as the label the trainers read (`soft_label = gt_label`)."""
    return pairs.add_column(SOFT_LABEL, list(pairs[GT_LABEL]))


def load_splits(config: DataConfig) -> DatasetDict:
    """Load the configured source and return disjoint `gt`, `w2s` and `test` splits in the normalised format, the
    training splits in a seeded random orientation with their `gt_label` (see the module docstring).

    Raises:
        W2SInputError: a file is missing or malformed, a column is missing, a split is empty or too small, or two
            splits share a pair.
    """
    if SOURCES[config.source].generated:
        splits = DatasetDict(_synthetic(config))
    else:
        splits = cut_splits(_load_raw(config), config)
    if config.evaluate_on == "validation":
        splits = validation_as_test(splits, config)
    check_splits(splits)
    for split in TRAINING_SPLITS:
        splits[split] = random_orientation(splits[split], config.seed)
    return splits


def load_helpful_pairs(config: HelpfulDataConfig, size: int, splits: DatasetDict) -> Dataset:
    """`size` helpfulness pairs for the implicit conflict, disjoint from the experiment's `splits`.

    Rows keep the normalised format (`chosen` = the harmless response when the source has both preferences, with
    `helpful_label`); [`w2s_align.conflicts.helpfulness_pairs`] orients them by helpfulness.
    """
    taken = {
        pair_key(p, c, r)
        for split in splits.values()
        for p, c, r in zip(split["prompt"], split["chosen"], split["rejected"])
    }
    where = f"conflicts.helpful ({config.source})"
    if SOURCES[config.source].generated:
        exclude = {row_id for split in splits.values() for row_id in split["id"]}
        pool = generate_pairs(size, seed=config.seed + 7919, pool="seen", exclude=exclude)
    else:
        raw = _load_raw(config)
        pool = raw["train"] if "train" in raw else raw[sorted(raw)[0]]
    pool = pool.filter(lambda row: pair_key(row["prompt"], row["chosen"], row["rejected"]) not in taken)
    return _take(pool, size, config.seed, where)
