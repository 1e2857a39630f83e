"""Train one model with a w2s_align trainer from the command line, in the style of TRL's `trl reward` and `trl dpo`.

```bash
w2s-align reward --config reward.yaml
w2s-align reward --model_name_or_path gpt2 --dataset_name weak_labels.jsonl --student_loss logconf \\
    --output_dir students/gpt2-logconf --use_peft --lora_r 16
accelerate launch -m w2s_align dpo --config dpo.yaml --learning_rate 5e-7
```

Arguments are parsed by TRL's `TrlParser` over the dataclasses `trl reward` and `trl dpo` parse: TRL's
`ScriptArguments` (the dataset), the trainer's config (`W2SRewardConfig` or `W2SDPOConfig`: every `TrainingArguments`
field, the student losses, the explicit conflict), TRL's `ModelConfig` (model, dtype, LoRA with `--use_peft`, 4/8-bit
with `--load_in_4bit`) and TRL's `DatasetMixtureConfig` (`--datasets`, `--streaming`, `--test_split_size`); `--config`
reads the same keys from a YAML file and the command line overrides it. The dataset (`--dataset_name`) is a hub
id or a local file or directory in any preference format the trainers take, with an optional `soft_label` column (the
weak supervisor's probability that `chosen` is better; without it every label is 1, TRL's own loss). The trainer
configs keep TRL's defaults (random batches, bf16, activation checkpointing). Flags the parser does not know are
`accelerate launch`'s, as `trl reward` takes them (`--num_processes 2`, `--accelerate_config zero2`): the command then
runs again under `accelerate launch` with them. Changed default: LoRA adapters of a reward model train the score head
too (`lora_task_type` is `SEQ_CLS` unless set).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Any, NoReturn

from .errors import W2SInputError, first_line
from .options import SOFT_LABEL

TRAINERS = {
    "reward": ("w2s_align.reward_trainer", "W2SRewardConfig", "W2SRewardTrainer"),
    "dpo": ("w2s_align.dpo_trainer", "W2SDPOConfig", "W2SDPOTrainer"),
}
# `model_init_kwargs` that say how weights are loaded, not what model is built (a card repeats the others).
_LOAD_ONLY = ("revision", "trust_remote_code", "attn_implementation", "dtype", "device_map")


def make_parser(name: str):
    """TRL's parser over `ScriptArguments`, the trainer's config, `ModelConfig` and `DatasetMixtureConfig`, for the
    trainer `name`: the dataclasses of TRL's script of that name, with the trainer's config in place of TRL's."""
    import importlib

    from trl import DatasetMixtureConfig, ModelConfig, ScriptArguments, TrlParser

    module, config, _ = TRAINERS[name]
    config_class = getattr(importlib.import_module(module), config)
    parser = TrlParser((ScriptArguments, config_class, ModelConfig, DatasetMixtureConfig), prog=f"w2s-align {name}")
    _keep_trl_flags(parser, config_class)
    return parser


def _keep_trl_flags(parser, config_class) -> None:
    """A flag whose TRL default is True but whose field here defaults to None (`gradient_checkpointing`: unset, TRL's
    True is set under its new name, `activation_checkpointing`) keeps TRL's form: a bare `--flag` means True and
    `--no_flag` means False."""
    from .cards import trl_base

    trl_defaults = {field.name: field.default for field in dataclasses.fields(trl_base(config_class))}
    derived = [field.name for field in dataclasses.fields(config_class) if field.default is None]
    for name in derived:
        if trl_defaults.get(name) is not True:
            continue
        action = next(action for action in parser._actions if action.dest == name)
        action.nargs, action.const = "?", True
        parser.add_argument(
            f"--no_{name}", f"--no-{name.replace('_', '-')}", action="store_false", dest=name, default=None
        )


def load_dataset_argument(script_args, mixture=None) -> Any:
    """The `DatasetDict` to train on, as TRL's scripts load it: the mixture `--datasets` (TRL's `get_dataset`, with
    `--streaming` and `--test_split_size`), else what `--dataset_name` names: a local file (json/jsonl/parquet/csv,
    gzip included), a directory saved by `save_to_disk` or holding data files, or a hub id with `--dataset_config`
    (streamed with `--dataset_streaming`). Raises `W2SInputError` naming the dataset and what is wrong."""
    from pathlib import Path

    import datasets

    from .data import DATA_SUFFIXES, read_data_file, saved_to_disk

    name = script_args.dataset_name
    if mixture is not None and mixture.datasets:
        from trl import get_dataset

        if name:  # as TRL's scripts do, and said as they say it
            logging.getLogger("w2s_align").warning("both --datasets and --dataset_name given: --datasets is used")
        try:
            return get_dataset(mixture)
        except Exception as error:  # datasets raises many types for a missing or unreadable dataset
            raise W2SInputError(f"--datasets: cannot be loaded ({type(error).__name__}: {error})") from None
    if not name:
        raise W2SInputError("--dataset_name or --datasets is required: a hub dataset id or a local file or directory")
    path = Path(name)
    streaming = script_args.dataset_streaming
    if path.is_file() and not streaming:
        return datasets.DatasetDict({"train": read_data_file(path)})
    try:
        if saved_to_disk(path):
            loaded = datasets.load_from_disk(str(path))
            loaded = loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
            return (
                datasets.IterableDatasetDict({k: v.to_iterable_dataset() for k, v in loaded.items()})
                if streaming
                else loaded
            )
        if path.is_file() and path.name.endswith(DATA_SUFFIXES):
            builder = next(kind for kind in ("parquet", "csv", "json") if f".{kind}" in path.name)
            return datasets.load_dataset(builder, data_files={"train": str(path)}, streaming=True)
        return datasets.load_dataset(name, name=script_args.dataset_config, streaming=streaming)
    except Exception as error:  # datasets raises many types for a missing or unreadable dataset
        raise W2SInputError(f"--dataset_name {name}: cannot be loaded ({type(error).__name__}: {error})") from None


def _split(dataset, split: str, name: str):
    if split not in dataset:
        raise W2SInputError(f"--dataset_name {name}: no split {split!r} (splits: {', '.join(dataset)})")
    columns = dataset[split].column_names or list(next(iter(dataset[split])))  # a stream knows them once read
    missing = [column for column in ("chosen", "rejected") if column not in columns]
    if missing:
        raise W2SInputError(f"--dataset_name {name}: split {split!r} has no column {missing[0]!r} (has: {columns})")
    if getattr(dataset[split], "num_rows", None) == 0:
        raise W2SInputError(f"--dataset_name {name}: split {split!r} is empty")
    where = f"--dataset_name {name}: split {split!r}"
    if SOFT_LABEL in columns and not hasattr(dataset[split], "num_rows"):  # a stream: each row checked as it is read
        stream = dataset[split]
        return stream.map(_checked_row, with_indices=True, fn_kwargs={"where": where}, features=stream.features)
    if SOFT_LABEL in columns:
        for row, label in enumerate(dataset[split][SOFT_LABEL]):
            _check_soft_label(label, row, where)
    return dataset[split]


def _check_soft_label(label: Any, row: int, where: str) -> None:
    number = isinstance(label, int | float) and not isinstance(label, bool)
    if not number or not 0 <= label <= 1:  # NaN fails the range test too
        raise W2SInputError(f"{where}, row {row}: '{SOFT_LABEL}' must be a probability in [0, 1], got {label!r}")


def _checked_row(row: dict, index: int, where: str) -> dict:
    """A streamed row's soft label checked as the trainer reads it (a stream cannot be checked before training)."""
    _check_soft_label(row[SOFT_LABEL], index, where)
    return {}


def _check_causal_lm(config, what: str) -> None:
    """Stop on a DPO policy whose checkpoint is not a causal LM (a reward model, an encoder): TRL builds the policy as
    the class its config's `architectures` names, not as `AutoModelForCausalLM`, and then fails on it."""
    import transformers
    from transformers.models.auto import modeling_auto

    names = config.architectures or []
    if not names:
        raise W2SInputError(f"{what}: its config names no architectures, which TRL builds the policy from")
    if not hasattr(transformers, names[0]):  # remote code: TRL picks the auto class its `auto_map` declares
        return
    policies = {
        *modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values(),
        *modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.values(),  # TRL trains vision-language policies too
    }
    if names[0] not in policies:
        raise W2SInputError(
            f"{what} is not a causal language model (its architectures: {', '.join(names)}), and TRL builds the DPO "
            "policy as that class: give a causal LM checkpoint (a reward model or an encoder cannot be a policy)"
        )


def _check_whole_checkpoint(checkpoint: str) -> None:
    """Stop on a `--resume_from_checkpoint` that a killed run or a full disk cut short: transformers writes a
    checkpoint's `trainer_state.json` last, and without it would restart the steps silently (or fail on a cut-short
    optimizer file)."""
    import json
    from pathlib import Path

    path = Path(checkpoint)
    if not path.is_dir():
        raise W2SInputError(f"--resume_from_checkpoint {checkpoint}: no such directory")
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        raise W2SInputError(
            f"--resume_from_checkpoint {checkpoint}: not a whole checkpoint (its trainer_state.json, written last, is "
            "missing or cut short: the save was interrupted); resume from the one before it"
        ) from None


def train(name: str, script_args, training_args, model_args, mixture=None, quiet: bool = False) -> Any:
    """Train with the trainer `name` (`reward` or `dpo`) as TRL's script of that name does; save the model (and push
    it with `--push_to_hub`), then end the trackers. `mixture` is TRL's `DatasetMixtureConfig` (`--datasets`);
    `quiet` leaves out the trainer's log lines and progress bar. Returns the trainer. Raises `W2SInputError` on a
    model or dataset that does not load."""
    import importlib
    from pathlib import Path

    from transformers import PrinterCallback, ProgressCallback

    from .run_lock import check_output_dir

    check_output_dir(Path(training_args.output_dir).absolute())
    module, _, trainer_name = TRAINERS[name]
    trainer_class = getattr(importlib.import_module(module), trainer_name)
    base_model, revision = _prepare_model(name, training_args, model_args)
    if training_args.push_to_hub:  # before training, not after it
        from .hub import check_push_access

        repo = training_args.hub_model_id
        check_push_access("--push_to_hub", repo.split("/")[0] if repo and "/" in repo else None)
    if training_args.resume_from_checkpoint:
        _check_whole_checkpoint(training_args.resume_from_checkpoint)
    dataset = load_dataset_argument(script_args, mixture)
    source = script_args.dataset_name or "--datasets"
    train_dataset = _split(dataset, script_args.dataset_train_split, source)
    eval_dataset = None
    if training_args.eval_strategy != "no":
        eval_dataset = _split(dataset, script_args.dataset_test_split, source)
    if not hasattr(train_dataset, "num_rows"):  # a stream
        if training_args.max_steps <= 0:
            raise W2SInputError("a streamed dataset has no length: give --max_steps")
        if training_args.train_sampling_strategy == "group_by_length":
            raise W2SInputError(
                "a streamed dataset is read in its order, so it cannot be grouped by length: drop "
                "--train_sampling_strategy group_by_length"
            )
    trainer = _build_trainer(trainer_class, training_args, model_args, train_dataset, eval_dataset, base_model, source)
    if quiet:
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    trained = _fit(trainer, training_args)
    _save(name, trainer, script_args, training_args, train_dataset, base_model, revision)
    saved = f"model saved to {training_args.output_dir}"
    trainer.accelerator.print(f"{_results(trainer, trained.metrics)}; {saved}" if quiet else saved)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    trainer.end()  # the trackers' shutdown and the process group's, as TRL's scripts end
    return trainer


def _prepare_model(name: str, training_args, model_args) -> tuple[str, str | None]:
    """The model as the trainer `name` loads it (an installed offline copy of a hub id), checked before any data is
    read; its loading settings in `training_args.model_init_kwargs`. Returns the model as given and its revision."""
    from .models import build_on_meta, check_model_loads, resolve_model_path
    from .tasks import REGISTRY

    if not model_args.model_name_or_path:
        raise W2SInputError("--model_name_or_path is required: a hub id or a local model directory")
    base_model = model_args.model_name_or_path
    model_args.model_name_or_path = resolve_model_path(base_model)  # or an installed offline copy
    model, revision = model_args.model_name_or_path, model_args.model_revision
    what = f"--model_name_or_path {model}"
    config = check_model_loads(model, revision, what, trust_remote_code=training_args.trust_remote_code)
    if not training_args.trust_remote_code:  # a remote model's class is not transformers' to build
        build_on_meta(config, {}, REGISTRY[name].auto_class, what)  # an encoder cannot be a DPO policy
    if name == "dpo":
        _check_causal_lm(config, what)
    model_init_kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(training_args.model_init_kwargs or {}),
    }
    training_args.model_init_kwargs = {key: value for key, value in model_init_kwargs.items() if value is not None}
    if name == "reward" and model_args.use_peft and model_args.lora_task_type == "CAUSAL_LM":
        model_args.lora_task_type = "SEQ_CLS"  # the changed default: the reward head trains with the adapters
    return base_model, revision


def _build_trainer(
    trainer_class, training_args, model_args, train_dataset, eval_dataset, base_model: str, source: str
):
    """The trainer, with TRL's PEFT and quantization configs from `model_args`; PEFT's and TRL's errors about the
    user's settings as one line."""
    from trl import get_peft_config, get_quantization_config

    try:
        return trainer_class(
            model=model_args.model_name_or_path,
            args=training_args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            peft_config=get_peft_config(model_args),
            quantization_config=get_quantization_config(model_args),
        )
    except ValueError as error:
        if type(error).__name__ == "NoMatchingPeftModuleError":  # PEFT's: a --lora_target_modules no module matches
            targets = model_args.lora_target_modules
            # TRL's ModelConfig passes one value alone as a string, which PEFT reads as a pattern of a whole name.
            pattern = " (one value alone is a regular expression of a whole module name: '.*c_attn')"
            pattern = pattern if isinstance(targets, str) else ""
            raise W2SInputError(
                f"--lora_target_modules {targets}: no module of {base_model} matches{pattern}"
            ) from None
        if "chat_template is not set" not in str(error):
            raise
        raise W2SInputError(
            f"{source}: conversational pairs need a chat template and the tokenizer of {base_model} has none: give "
            "--chat_template_path (a Jinja file, or a tokenizer whose template is copied)"
        ) from None


def _fit(trainer, training_args):
    """`trainer.train()`, a streamed row's error as its one line."""
    from transformers import ProgressCallback

    try:
        return trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    except W2SInputError as error:  # a streamed row's check (`_checked_row`)
        for callback in trainer.callback_handler.callbacks:  # its line under the progress bar, not glued to it
            if isinstance(callback, ProgressCallback) and callback.training_bar is not None:
                callback.training_bar.close()
        message = str(error).strip().splitlines()
        if len(message) == 1:
            raise
        # Re-raised by a DataLoader worker, with the worker's traceback in the message: its last line is the original.
        raise W2SInputError(message[-1].split(f"{W2SInputError.__name__}: ", 1)[-1]) from None


def _save(name: str, trainer, script_args, training_args, train_dataset, base_model: str, revision) -> None:
    """Save the model with its card: TRL's, naming the base as given, with the weak-to-strong settings and how to
    load it."""
    from pathlib import Path

    from .artifacts import atomic_write_text
    from .cards import loading_section, name_local_base, record_base_model, trainer_section
    from .tasks import REGISTRY

    trainer.save_model(training_args.output_dir)
    # TRL writes its card with a checkpoint or a push; the saved model gets one too, naming the base as given.
    record_base_model(trainer, Path(training_args.output_dir), base_model)
    dataset_id = (
        script_args.dataset_name if script_args.dataset_name and not Path(script_args.dataset_name).exists() else None
    )
    if trainer.hub_model_id is None:  # not pushed: the card's quick start loads the saved directory
        trainer.hub_model_id = training_args.output_dir
    trainer.create_model_card(model_name=Path(training_args.output_dir).name, dataset_name=dataset_id)
    card = Path(training_args.output_dir) / "README.md"
    if trainer.is_world_process_zero() and card.is_file():
        soft_labels = SOFT_LABEL in (getattr(train_dataset, "column_names", None) or [])
        # What the model was built with beyond its weights (a cut to fewer layers): a LoRA base must be built so too.
        built = {k: v for k, v in training_args.model_init_kwargs.items() if k not in _LOAD_ONLY}
        loading = loading_section(
            training_args.output_dir,
            REGISTRY[name].auto_class,
            (base_model, revision if revision != "main" else None),
            built,
        )
        section = trainer_section(training_args, soft_labels) + loading
        atomic_write_text(card, name_local_base(card.read_text(), base_model) + section)


def _results(trainer: Any, metrics: dict[str, float]) -> str:
    """`-q`'s line of results: the training metrics and the last evaluation's, without the throughputs, which the
    trainer's own log lines (left out) carry."""
    evaluations = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    last = evaluations[-1] if evaluations else {}
    metrics = {**metrics, **{key: value for key, value in last.items() if key.startswith("eval_")}}
    shown = {key: value for key, value in metrics.items() if not key.endswith(("_per_second", "total_flos"))}
    return ", ".join(f"{key} {value:.4g}" for key, value in shown.items())


def main(name: str, argv: list[str], quiet: bool = False) -> int:
    """`w2s-align <name> ARGS`: parse `argv` (after the command name) and train; with flags of `accelerate launch`
    among them, run again under it, as `trl <name>` does (see [`launch`]), and return its exit status."""
    _check_config_file(argv)
    parser = make_parser(name)
    parser.error = _refuse  # a value argparse cannot convert: its one line, without the page of usage
    try:
        *parsed, config_rest, argv_rest = parser.parse_args_and_config(
            argv, return_remaining_strings=True, separate_remaining_strings=True
        )
    except (ValueError, OverflowError) as error:  # a config value that TRL's or our config refuses
        _check_numbers(vars(parser.parse_known_args(argv)[0]))  # an infinite `--save_steps` overflows: name it
        raise W2SInputError(first_line(error)) from None
    launch_args = _launch_args(name, config_rest, argv_rest)
    if launch_args:
        from trl.cli.commands.training import _subtract_subsequence  # TRL's own split of the command line

        return launch(name, launch_args, _subtract_subsequence(argv, argv_rest), quiet)
    script_args, training_args, model_args, mixture = parsed
    _check_numbers({field.name: getattr(args, field.name) for args in parsed for field in dataclasses.fields(args)})
    _check_ranges(training_args)
    _check_chat_template(training_args)
    _check_quantization(name, training_args, model_args)
    train(name, script_args, training_args, model_args, mixture, quiet)
    return 0


def _refuse(message: str) -> NoReturn:
    raise W2SInputError(message)


def _launched() -> bool:
    """Whether a launcher started this process: torchrun and DeepSpeed set `LOCAL_RANK`, accelerate's single-process
    launcher `ACCELERATE_USE_CPU`."""
    return "LOCAL_RANK" in os.environ or "ACCELERATE_USE_CPU" in os.environ


def _launch_args(name: str, config_rest: list[str], argv_rest: list[str]) -> list[str]:
    """The arguments for `accelerate launch`, as `trl <name>` finds them: what the parser leaves of the config file
    (`--key value`) and of the command line, with `--accelerate_config NAME` resolved by TRL (a file, or a config TRL
    ships). Raises `W2SInputError` on a flag that neither takes, and on accelerate's flags in a process a launcher
    started (there the config file's are left to the launcher, as TRL's scripts do)."""
    from accelerate.commands.launch import launch_command_parser
    from trl.cli.accelerate_config import resolve_accelerate_config_argument

    known = {option for action in launch_command_parser()._actions for option in action.option_strings}
    known.add("--accelerate_config")  # TRL's, resolved below
    for source, rest in (("the --config file's key", config_rest), ("unknown flag", argv_rest)):
        for token in rest:
            flag = token.split("=", 1)[0]
            if flag.startswith("-") and not flag.lstrip("-").replace(".", "").isdigit() and flag not in known:
                what = f"{source} {flag.lstrip('-')!r}" if rest is config_rest else f"{source} {flag}"
                raise W2SInputError(
                    f"{what}: neither w2s-align {name} nor accelerate launch takes it (see w2s-align {name} --help "
                    "and accelerate launch --help)"
                )
    if _launched():
        if argv_rest:
            raise W2SInputError(
                f"{' '.join(argv_rest)}: accelerate launch's, and this process was started by a launcher: give them "
                f"to the launcher, before -m w2s_align {name}"
            )
        return []
    try:
        return resolve_accelerate_config_argument(config_rest + argv_rest)
    except ValueError as error:
        raise W2SInputError(f"--accelerate_config: {first_line(error)}") from None


def launch(name: str, launch_args: list[str], argv: list[str], quiet: bool = False) -> int:
    """Run `w2s-align <name> argv` again under `accelerate launch launch_args`, as `trl <name>` runs its script, and
    return its exit status (a failing process has printed its own error). `quiet` and a `-v` of this command (the
    `w2s_align` logger at debug level) pass on to the launched processes."""
    import subprocess

    from accelerate.commands.launch import launch_command, launch_command_parser

    from .verbosity import trainer_lines_enabled

    parser = launch_command_parser()
    parser.error = lambda message: _refuse(f"accelerate launch: {message}")
    loudness = ["-q"] if quiet else ["-v"] if trainer_lines_enabled() else []
    launch_args = parser.parse_args([*launch_args, "--module", "w2s_align", name, *loudness, *argv])
    try:
        launch_command(launch_args)
    except subprocess.CalledProcessError as error:
        return error.returncode
    return 0


def _check_config_file(argv: list[str]) -> None:
    """Stop on a `--config` that TRL's parser would end in a traceback on: missing, a directory, unreadable, not
    YAML, or with a key given twice."""
    from pathlib import Path

    from .recipe_yaml import read_yaml_file

    given = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--config"]
    given += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]
    for config in map(Path, given):
        if not config.is_file():
            raise W2SInputError(f"--config {config}: {'a directory, not a' if config.is_dir() else 'no such'} file")
        read_yaml_file(config, f"--config {config}")


def _check_ranges(args) -> None:
    """Stop on values TRL's configs accept but that train on nothing (or for ever)."""
    if args.max_steps <= 0 and not args.num_train_epochs > 0:
        raise W2SInputError(f"--num_train_epochs must be above 0 (or give --max_steps), got {args.num_train_epochs}")


# Bounds of the counts that size a run's work or memory, (lowest, highest), far beyond any real run: TRL's configs and
# TrainingArguments take any integer, and past these a run trains for ever (`--max_steps 1e12`), overflows (a batch
# past sys.maxsize), forks workers until memory runs out, or fails only once training starts (a batch of 0). None
# (unset) is always allowed.
COUNT_BOUNDS: dict[str, tuple[float, float]] = {
    "per_device_train_batch_size": (1, 2**20),
    "per_device_eval_batch_size": (1, 2**20),
    "precompute_ref_batch_size": (1, 2**20),
    "gradient_accumulation_steps": (1, 2**20),
    "eval_accumulation_steps": (1, 2**20),
    "max_steps": (-math.inf, 10**7),  # 0 or below: --num_train_epochs decides
    "num_train_epochs": (-math.inf, 10**6),  # below 0: see `_check_ranges`
    "warmup_steps": (0, 10**7),
    "max_length": (1, 2**24),
    "pad_to_multiple_of": (1, 2**24),
    "dataloader_num_workers": (0, 256),
    "dataloader_prefetch_factor": (1, 1024),
    "dataset_num_proc": (1, 256),
    "lora_r": (1, 2**16),
    "seed": (0, 2**32 - 1),  # what transformers' `set_seed` (numpy's seed) takes
}


def _check_numbers(values: dict[str, Any]) -> None:
    """Stop on numbers TRL's configs accept but that cannot train: not finite (any float flag, lists included), a
    count outside [`COUNT_BOUNDS`], or `--loss_weights` that weigh a loss below 0 or every loss 0 (DPO's loss would
    be turned round, or nothing learnt)."""
    for key, value in values.items():
        numbers = value if isinstance(value, list) else [value]
        if any(isinstance(number, float) and not math.isfinite(number) for number in numbers):
            raise W2SInputError(f"--{key} must be a finite number, got {value}")
    for key, (lowest, highest) in COUNT_BOUNDS.items():
        value = values.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):  # unset, or a word (`pad_to_multiple_of`)
            continue
        if value < lowest:
            raise W2SInputError(f"--{key} must be at least {lowest}, got {value}")
        if value > highest:
            raise W2SInputError(f"--{key} must be at most {highest:,}, got {value}")
    weights = values.get("loss_weights")
    if weights and (min(weights) < 0 or max(weights) == 0):
        raise W2SInputError(
            f"--loss_weights must be 0 or more, with one above 0 (each weighs a --loss_type), got {weights}"
        )


def _check_chat_template(args) -> None:
    """Stop on a `--chat_template_path` (TRL's reward trainer's; its DPO takes none) that TRL would end in a
    traceback on: missing, a directory, binary, not Jinja, a template that raises, a tokenizer that does not load or
    has no template. TRL reads a `.jinja`/`.j2` file as the template and any other path as a tokenizer to copy it
    from; the path it gets is expanded (`~`) and a tokenizer's resolved as `--model_name_or_path` is."""
    from pathlib import Path

    from .chat_templates import JINJA_SUFFIXES
    from .models import read_chat_template, resolve_model_path

    source = getattr(args, "chat_template_path", None)
    if source is None:
        return
    what = f"--chat_template_path {source}"
    if Path(source).expanduser().is_file() and not source.endswith(JINJA_SUFFIXES):
        raise W2SInputError(
            f"{what}: a template file must end in .jinja or .j2 (TRL reads any other path as a tokenizer to copy the "
            "template of)"
        )
    read_chat_template(source, what)
    jinja = source.endswith(JINJA_SUFFIXES)
    args.chat_template_path = str(Path(source).expanduser()) if jinja else resolve_model_path(source)


def _check_quantization(name: str, args, model_args) -> None:
    """Stop on 4/8-bit settings (`--load_in_4bit`, QLoRA) that TRL and transformers end in a traceback on, at load or
    at the first step: no adapters to train, a compute dtype bitsandbytes cannot take, or a reward head that PEFT keeps
    in float32 fed by layers computing in half precision without mixed precision (the default without a GPU)."""
    from trl import get_quantization_config

    flag = "--load_in_4bit" if model_args.load_in_4bit else "--load_in_8bit" if model_args.load_in_8bit else None
    if flag is None:
        return
    if not model_args.use_peft:
        raise W2SInputError(
            f"{flag} needs --use_peft: a quantized model trains LoRA adapters (QLoRA), not its weights"
        )
    if model_args.load_in_4bit and model_args.dtype == "auto":  # TRL makes --dtype the 4-bit layers' compute dtype
        raise W2SInputError("--dtype auto with --load_in_4bit: the 4-bit layers compute in --dtype; name one")
    try:
        get_quantization_config(model_args)
    except ValueError as error:  # bitsandbytes' settings, as `BitsAndBytesConfig` checks them
        raise W2SInputError(f"{flag}: {first_line(error)}") from None
    half = model_args.dtype in ("bfloat16", "float16")
    if name == "reward" and half and not (args.bf16 or args.fp16):
        dtype, mixed = model_args.dtype, "--bf16" if model_args.dtype == "bfloat16" else "--fp16"
        raise W2SInputError(
            f"{flag} with --dtype {dtype}: the quantized layers compute in {dtype} but PEFT keeps the reward head in "
            f"float32, and they meet only under mixed precision ({mixed} true; --bf16 is TRL's default): turn it on, "
            "or leave --dtype unset"
        )
