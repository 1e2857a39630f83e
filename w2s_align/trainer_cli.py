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
weak supervisor's probability that `chosen` is better; without it every label is 1, TRL's own loss). Changed default:
LoRA adapters of a reward model train the score head too (`lora_task_type` is `SEQ_CLS` unless set).
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import W2SInputError, first_line
from .options import SOFT_LABEL

TRAINERS = {
    "reward": ("w2s_align.reward_trainer", "W2SRewardConfig", "W2SRewardTrainer"),
    "dpo": ("w2s_align.dpo_trainer", "W2SDPOConfig", "W2SDPOTrainer"),
}


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
    """A flag whose TRL default is True but is derived from the device here (default None, e.g.
    `gradient_checkpointing`) keeps TRL's form: a bare `--flag` means True and `--no_flag` means False."""
    import dataclasses

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
    if SOFT_LABEL in columns and hasattr(dataset[split], "num_rows"):
        for row, label in enumerate(dataset[split][SOFT_LABEL]):
            number = isinstance(label, int | float) and not isinstance(label, bool)
            if not number or not 0 <= label <= 1:  # NaN fails the range test too
                raise W2SInputError(
                    f"--dataset_name {name}: split {split!r}, row {row}: '{SOFT_LABEL}' must be a probability in "
                    f"[0, 1], got {label!r}"
                )
    return dataset[split]


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
    from trl import get_peft_config, get_quantization_config

    from .artifacts import atomic_write_text
    from .cards import name_local_base, record_base_model
    from .models import build_on_meta, check_model_loads, resolve_model_path
    from .run_lock import check_output_dir
    from .tasks import REGISTRY

    check_output_dir(Path(training_args.output_dir).absolute())
    module, _, trainer_name = TRAINERS[name]
    trainer_class = getattr(importlib.import_module(module), trainer_name)
    if not model_args.model_name_or_path:
        raise W2SInputError("--model_name_or_path is required: a hub id or a local model directory")
    base_model = model_args.model_name_or_path
    model_args.model_name_or_path = resolve_model_path(base_model)  # or an installed offline copy
    model, revision = model_args.model_name_or_path, model_args.model_revision
    what = f"--model_name_or_path {model}"
    config = check_model_loads(model, revision, what, trust_remote_code=training_args.trust_remote_code)
    if not training_args.trust_remote_code:  # a remote model's class is not transformers' to build
        build_on_meta(config, {}, REGISTRY[name].auto_class, what)  # an encoder cannot be a DPO policy
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
                "a streamed dataset is read in its order, so it cannot be grouped by length: give "
                "--train_sampling_strategy sequential"
            )
    try:
        trainer = trainer_class(
            model=model_args.model_name_or_path,
            args=training_args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            peft_config=get_peft_config(model_args),
            quantization_config=get_quantization_config(model_args),
        )
    except ValueError as error:
        if "chat_template is not set" not in str(error):
            raise
        raise W2SInputError(
            f"{source}: conversational pairs need a chat template and the tokenizer of {base_model} has none: give "
            "--chat_template_path (a Jinja file, or a tokenizer whose template is copied)"
        ) from None
    if quiet:
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
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
        atomic_write_text(card, name_local_base(card.read_text(), base_model))
    if not quiet:
        trainer.accelerator.print(f"model saved to {training_args.output_dir}")
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    trainer.end()  # the trackers' shutdown and the process group's, as TRL's scripts end
    return trainer


def main(name: str, argv: list[str], quiet: bool = False) -> int:
    """`w2s-align <name> ARGS`: parse `argv` (after the command name) and train."""
    _check_config_file(argv)
    try:
        script_args, training_args, model_args, mixture = make_parser(name).parse_args_and_config(argv)
    except ValueError as error:  # an unknown flag, or a config value that TRL's or our config refuses
        raise W2SInputError(first_line(error)) from None
    _check_ranges(training_args)
    train(name, script_args, training_args, model_args, mixture, quiet)
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
    if args.max_length is not None and args.max_length < 1:
        raise W2SInputError(f"--max_length must be at least 1, got {args.max_length}")
    if args.max_steps <= 0 and not args.num_train_epochs > 0:
        raise W2SInputError(f"--num_train_epochs must be above 0 (or give --max_steps), got {args.num_train_epochs}")
