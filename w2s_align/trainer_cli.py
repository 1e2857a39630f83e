"""Train one model with a w2s_align trainer from the command line, in the style of TRL's `trl reward` and `trl dpo`.

```bash
w2s-align reward --config reward.yaml
w2s-align reward --model_name_or_path gpt2 --dataset_name weak_labels.jsonl --student_loss logconf \\
    --output_dir students/gpt2-logconf --use_peft --lora_r 16
accelerate launch -m w2s_align dpo --config dpo.yaml --learning_rate 5e-7
```

Arguments are parsed by TRL's `TrlParser` over TRL's `ScriptArguments` (the dataset), the trainer's config
(`W2SRewardConfig` or `W2SDPOConfig`: every `TrainingArguments` field, the student losses, the explicit conflict) and
TRL's `ModelConfig` (model, dtype, LoRA with `--use_peft`, 4/8-bit with `--load_in_4bit`); `--config` reads the same
keys from a YAML file and the command line overrides it. The dataset (`--dataset_name`) is a hub id or a local file
or directory in any preference format the trainers take, with an optional `soft_label` column (the weak supervisor's
probability that `chosen` is better; without it every label is 1, TRL's own loss). Changed default: LoRA adapters of a
reward model train the score head too (`lora_task_type` is `SEQ_CLS` unless set).
"""

from __future__ import annotations

from typing import Any

from .errors import W2SInputError

TRAINERS = {
    "reward": ("w2s_align.reward_trainer", "W2SRewardConfig", "W2SRewardTrainer"),
    "dpo": ("w2s_align.dpo_trainer", "W2SDPOConfig", "W2SDPOTrainer"),
}


def make_parser(name: str):
    """TRL's parser over `ScriptArguments`, the trainer's config and `ModelConfig`, for the trainer `name`."""
    import importlib

    from trl import ModelConfig, ScriptArguments, TrlParser

    module, config, _ = TRAINERS[name]
    config_class = getattr(importlib.import_module(module), config)
    return TrlParser((ScriptArguments, config_class, ModelConfig), prog=f"w2s-align {name}")


def load_dataset_argument(script_args) -> Any:
    """The `DatasetDict` that `--dataset_name` names: a local file (json/jsonl/parquet/csv, gzip included), a
    directory saved by `save_to_disk` or holding data files, or a hub id with `--dataset_config`. Raises
    `W2SInputError` naming the dataset and what is wrong."""
    from pathlib import Path

    import datasets

    from .data import read_data_file

    name = script_args.dataset_name
    if not name:
        raise W2SInputError("--dataset_name is required: a hub dataset id or a local file or directory")
    path = Path(name)
    if path.is_file():
        return datasets.DatasetDict({"train": read_data_file(path)})
    try:
        if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
        return datasets.load_dataset(name, name=script_args.dataset_config)
    except Exception as error:  # datasets raises many types for a missing or unreadable dataset
        raise W2SInputError(f"--dataset_name {name}: cannot be loaded ({type(error).__name__}: {error})") from None


def _split(dataset, split: str, name: str):
    if split not in dataset:
        raise W2SInputError(f"--dataset_name {name}: no split {split!r} (splits: {', '.join(dataset)})")
    columns = dataset[split].column_names
    missing = [column for column in ("chosen", "rejected") if column not in columns]
    if missing:
        raise W2SInputError(f"--dataset_name {name}: split {split!r} has no column {missing[0]!r} (has: {columns})")
    if dataset[split].num_rows == 0:
        raise W2SInputError(f"--dataset_name {name}: split {split!r} is empty")
    return dataset[split]


def train(name: str, script_args, training_args, model_args) -> Any:
    """Train with the trainer `name` (`reward` or `dpo`) as TRL's script of that name does; save the model (and push
    it with `--push_to_hub`). Returns the trainer. Raises `W2SInputError` on a model or dataset that does not load."""
    import importlib

    from trl import get_peft_config, get_quantization_config

    from .models import resolve_model_path

    module, _, trainer_name = TRAINERS[name]
    trainer_class = getattr(importlib.import_module(module), trainer_name)
    if not model_args.model_name_or_path:
        raise W2SInputError("--model_name_or_path is required: a hub id or a local model directory")
    model_args.model_name_or_path = resolve_model_path(model_args.model_name_or_path)  # or an installed offline copy
    _check_model_loads(model_args)
    model_init_kwargs = {
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(training_args.model_init_kwargs or {}),
    }
    training_args.model_init_kwargs = {key: value for key, value in model_init_kwargs.items() if value is not None}
    if name == "reward" and model_args.use_peft and model_args.lora_task_type == "CAUSAL_LM":
        model_args.lora_task_type = "SEQ_CLS"  # the changed default: the reward head trains with the adapters
    dataset = load_dataset_argument(script_args)
    train_dataset = _split(dataset, script_args.dataset_train_split, script_args.dataset_name)
    eval_dataset = None
    if training_args.eval_strategy != "no":
        eval_dataset = _split(dataset, script_args.dataset_test_split, script_args.dataset_name)
    trainer = trainer_class(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"model saved to {training_args.output_dir}")
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    return trainer


def _check_model_loads(model_args) -> None:
    """Stop before training on a model whose config does not load (a wrong id or path, no network)."""
    from pathlib import Path

    from transformers import AutoConfig

    from .models import looks_like_a_path, weights_problem

    model = model_args.model_name_or_path
    try:
        if looks_like_a_path(model) and not Path(model).expanduser().exists():
            raise ValueError("no such local directory")  # else the hub client answers with a rule about repo ids
        AutoConfig.from_pretrained(model, revision=model_args.model_revision)
        problem = weights_problem(Path(model)) if Path(model).is_dir() else None
        if problem:
            raise ValueError(problem)
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0]
        raise W2SInputError(
            f"--model_name_or_path {model_args.model_name_or_path}: does not load ({reason})"
        ) from None


def main(name: str, argv: list[str]) -> int:
    """`w2s-align <name> ARGS`: parse `argv` (after the command name) and train."""
    script_args, training_args, model_args = make_parser(name).parse_args_and_config(argv)
    train(name, script_args, training_args, model_args)
    return 0
