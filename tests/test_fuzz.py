"""Hostile but realistic recipes (issue 28): each stops before anything is written, with one line naming the key, and
exit code 2; never a traceback, never silent acceptance. A new option that reintroduces either fails here."""

import os
from pathlib import Path

import pytest
import yaml

from w2s_align.cli import main

BASE = {"name": "fuzz", "ladder": [{"name": "weak", "model": "m"}, {"name": "strong", "model": "m"}]}

STRONG = BASE["ladder"][1]
INF, NAN = float("inf"), float("nan")
FINITE = "must be a finite number"


def kinds(**weights) -> dict:
    return {"data": {"synthetic": {"kind_weights": weights}}}


def trainer(**kwargs) -> dict:
    return {"training": {"trainer_kwargs": kwargs}}


# (what is wrong, what the recipe changes, the words the one line must hold)
RECIPES = [
    ("a rung name that leaves the run", {"ladder": [{"name": "../../x", "model": "m"}, STRONG]}, "'ladder.0.name' is"),
    ("a rung name with a slash", {"ladder": [{"name": "a/b", "model": "m"}, STRONG]}, "'ladder.0.name' is 'a/b'"),
    ("a recipe name that leaves runs/", {"name": "../x"}, "'name' is '../x'"),
    ("a hidden name", {"name": ".hidden"}, "'name' is '.hidden'"),
    ("an infinite learning rate", {"training": {"learning_rate": INF}}, f"'training.learning_rate' {FINITE}"),
    ("a NaN conflict strength", {"conflicts": {"alphas": [NAN]}}, f"'conflicts.alphas.0' {FINITE}"),
    ("infinite epochs", {"training": {"num_train_epochs": INF}}, f"'training.num_train_epochs' {FINITE}"),
    ("a negative data seed", {"data": {"seed": -1}}, "'data.seed' must be 0 or more, got -1"),
    ("a seed given twice", {"seeds": [0, 0]}, "'seeds' repeats [0]"),
    ("a seed numpy cannot take", {"seeds": [2**32]}, "'seeds.0' must be at most 4294967295, got 4294967296"),
    ("a conflict of strength 0", {"conflicts": {"alphas": [0]}}, "'conflicts.alphas' must be positive"),
    ("a learning rate of 1e300", {"training": {"learning_rate": 1e300}}, "'training.learning_rate' must be at most"),
    ("max_steps of 1e30 as text", trainer(max_steps="1e30"), "'training.trainer_kwargs.max_steps' must be at most"),
    (
        "a validation slice never read",
        {"data": {"evaluate_on": "test", "validation_size": 10}},
        "'data.validation_size' holds pairs out for 'data.evaluate_on: validation'",
    ),
    ("no synthetic kind weighted", kinds(surface=0), "some kind a weight above 0"),
    ("a negative kind weight", kinds(surface=-1), "kind_weights.surface' must be 0 or more, got -1"),
    ("an unknown kind", kinds(sarcasm=1), "kind_weights' names ['sarcasm']"),
    ("a batch of 0 by trainer_kwargs", trainer(per_device_train_batch_size=0), "size' must be at least 1, got 0"),
    ("an infinite trainer value", trainer(max_grad_norm=INF), f"'training.trainer_kwargs.max_grad_norm' {FINITE}"),
    (
        "helpfulness pairs that do not exist",
        {"conflicts": {"settings": ["implicit"], "helpful": {"source": "preference", "path": "./no.jsonl"}}},
        "conflicts.helpful.path: './no.jsonl' does not exist",
    ),
]  # fmt: skip

# YAML texts that are not recipes PyYAML reads silently (or at the cost of the machine's memory).
TEXTS = [
    ("a key given twice", "name: a\nname: b\nladder: []\n", "the key 'name' is given twice"),
    (
        "an alias bomb",
        "name: x\nladder: []\ntrainer: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"b{i}: &a{i + 1} [{', '.join([f'*a{i}'] * 10)}]\n" for i in range(8)),
        "more than 100000 values once its aliases are expanded",
    ),
    (
        "a flow-style list of megabytes",
        "name: x\nladder: [" + "1, " * 700_000 + "]\n",
        "longer than 1000000 characters",
    ),
]


def stopped_cleanly(path: Path, out: Path, capsys, words: str) -> None:
    code = main(["run", str(path), f"output_dir={out}"])
    err = capsys.readouterr().err
    assert code == 2 and words in err, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert not out.exists(), "nothing is written for a bad recipe"


@pytest.mark.parametrize(("what", "raw", "words"), RECIPES, ids=[case[0] for case in RECIPES])
def test_a_hostile_recipe_value_stops_with_one_line(what, raw, words, tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**BASE, **raw}))
    stopped_cleanly(path, tmp_path / "run", capsys, words)


@pytest.mark.parametrize(("what", "text", "words"), TEXTS, ids=[case[0] for case in TEXTS])
def test_a_hostile_yaml_file_stops_with_one_line(what, text, words, tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    stopped_cleanly(path, tmp_path / "run", capsys, words)


def test_a_hostile_name_given_as_an_override_writes_nothing_outside_the_run(tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(BASE))
    before = set(os.listdir(tmp_path))
    assert main(["run", str(path), "ladder.weak.name=../../../escaped", f"output_dir={tmp_path / 'run'}"]) == 2
    assert "'ladder.0.name' is '../../../escaped'" in capsys.readouterr().err
    assert set(os.listdir(tmp_path)) == before and not (tmp_path.parent / "escaped").exists()


def test_an_unreadable_recipe_stops_with_one_line(tmp_path, capsys, monkeypatch):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(BASE))

    def denied(self, *args, **kwargs):  # as for a file without read permission (the tests may run as root)
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    stopped_cleanly(path, tmp_path / "run", capsys, "cannot be read (Permission denied)")


def encoder_dir(tiny_model_dir: Path, directory: Path) -> Path:
    """A tiny MPNet encoder (the ladders' strong rung) with the tiny GPT-2's tokenizer: no causal LM exists of it."""
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    config = MPNetConfig(
        vocab_size=600, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    MPNetModel(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(directory)
    return directory


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"config_overrides": {"frobnicate": 1}},
            "ladder rung 'weak': config_overrides.frobnicate is not a GPT2Config field",
        ),
        ({"config_overrides": {"n_head": 3}}, "cannot be built as AutoModelForSequenceClassification"),
    ],
    ids=["unknown config key", "heads that do not divide the width"],
)
def test_config_overrides_the_model_refuses_stop_with_one_line(change, words, tiny_recipe, tmp_path, capsys):
    tiny_recipe["ladder"][0].update(name="weak", **change)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err
    assert not (Path(tiny_recipe["output_dir"]) / "stages").exists()


def test_a_revision_of_a_local_model_stops_with_one_line(tiny_recipe, tiny_model_dir, tmp_path, capsys):
    tiny_recipe["ladder"][1]["revision"] = "no-such-branch"  # transformers reads a directory and drops a revision
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"revision 'no-such-branch' names a hub commit, but {tiny_model_dir} is a local directory" in err, err
    assert err.count("\n") == 1 and not (Path(tiny_recipe["output_dir"]) / "stages").exists()


def test_an_encoder_as_a_policy_stops_with_one_line(tiny_recipe, tiny_model_dir, tmp_path, capsys):
    tiny_recipe.update(task="dpo")
    tiny_recipe["ladder"][1]["model"] = str(encoder_dir(tiny_model_dir, tmp_path / "mpnet"))
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ladder rung 'tiny-l2': model" in err and "cannot be built as AutoModelForCausalLM" in err, err
    assert not (Path(tiny_recipe["output_dir"]) / "stages").exists()


def test_an_output_directory_with_a_name_too_long_stops_with_one_line(tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert main(["run", str(path), f"output_dir={tmp_path / ('x' * 300)}"]) == 2
    err = capsys.readouterr().err
    assert "a name in it is longer than 255 bytes" in err and err.count("\n") == 1


def test_an_output_directory_that_cannot_be_written_stops_with_one_line(tmp_path, capsys, monkeypatch):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(BASE))
    monkeypatch.setattr(
        os, "access", lambda *args: False
    )  # as for a parent without write permission (tests may run as root)
    assert main(["run", str(path), f"output_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert f"output_dir {tmp_path / 'run'}: cannot be written (no write permission on {tmp_path})" in err
    assert not (tmp_path / "run").exists()


def pair(i: int, **changes) -> dict:
    return {"id": f"p{i}", "prompt": f"Question {i}?", "chosen": f"good answer {i}", "rejected": f"bad {i}", **changes}


def conversation(i: int, prompt_role: str = "user", response_role: str = "assistant") -> dict:
    def turn(role: str, text: str) -> list[dict]:
        return [{"role": role, "content": text}]

    return {
        "id": f"c{i}",
        "prompt": turn(prompt_role, f"q{i}"),
        "chosen": turn(response_role, f"good {i}"),
        "rejected": turn(response_role, f"bad {i}"),
    }


MESSAGE = [{"role": "user", "content": "q"}]
# (what is wrong, row i of the file, the words of the one line)
DATA_FILES = [
    ("an empty response", lambda i: pair(i, chosen="" if i == 3 else "ok"), "row 3: not a preference pair: 'chosen'"),
    ("a word as helpful_label", lambda i: pair(i, helpful_label="yes"), "'helpful_label' must be a number in [0, 1]"),
    ("a message prompt, text responses", lambda i: pair(i, prompt=MESSAGE), "'prompt' must be text as the responses"),
    ("one id for every row", lambda i: pair(i, id="same"), "rows 0 and 1 have the same id 'same'"),
    ("text and conversations", lambda i: pair(i) if i % 2 else conversation(i), "row 1 is text and row 0 a"),
    ("an assistant named bot", lambda i: conversation(i, response_role="bot"), "'chosen' holds messages of the"),
    ("the roles swapped", lambda i: conversation(i, "assistant", "user"), "the prompt's messages must end with"),
    ("a kind that is a number", lambda i: pair(i, kind=3), "'kind' must be text"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "row", "words"), DATA_FILES, ids=[case[0] for case in DATA_FILES])
def test_a_hostile_data_file_stops_with_one_line_naming_it(what, row, words, tmp_path):
    import json

    from w2s_align.data import load_splits
    from w2s_align.errors import W2SInputError
    from w2s_align.recipe import DataConfig

    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row(i)) + "\n" for i in range(30)))
    with pytest.raises(W2SInputError) as stopped:
        load_splits(DataConfig(source="preference", path=str(path), gt_size=8, w2s_size=8, test_size=8))
    assert str(stopped.value).startswith(str(path)) and words in str(stopped.value), str(stopped.value)


def test_an_unreadable_data_file_is_called_unreadable_not_corrupt(tmp_path, monkeypatch):
    import gzip

    from w2s_align import data
    from w2s_align.errors import W2SInputError
    from w2s_align.recipe import DataConfig

    path = tmp_path / "pairs.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"prompt": "q", "chosen": "a", "rejected": "b"}\n'))

    def denied(*args, **kwargs):  # as for a file without read permission (the tests may run as root)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(data.gzip, "open", denied)
    with pytest.raises(W2SInputError, match=f"^{path}: cannot be read \\(Permission denied\\)$"):
        data.check_local_files(DataConfig(source="preference", path=str(path)))


def broken_copy(tiny_model_dir: Path, directory: Path, damage: str) -> Path:
    """The tiny model's directory with one thing wrong."""
    import shutil

    import torch
    from safetensors.torch import save_file

    shutil.copytree(tiny_model_dir, directory)
    if damage == "random bytes":
        (directory / "model.safetensors").write_bytes(os.urandom(4096))
    elif damage == "another model's tensors":
        save_file({"encoder.layer.0.weight": torch.zeros(4, 4)}, str(directory / "model.safetensors"))
    else:  # no tokenizer files: transformers would build a stand-in of a few tokens
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"):
            (directory / name).unlink(missing_ok=True)
    return directory


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("random bytes", "model.safetensors is not a safetensors file"),
        ("another model's tensors", "model.safetensors holds none of the tensors of GPT2ForSequenceClassification"),
        ("no tokenizer", "its tokenizer has 1 tokens for 600 embeddings"),
    ],
)
def test_a_broken_model_directory_stops_with_one_line(damage, words, tiny_recipe, tiny_model_dir, tmp_path, capsys):
    tiny_recipe["ladder"][1]["model"] = str(broken_copy(tiny_model_dir, tmp_path / "model", damage))
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ladder rung 'tiny-l2'" in err and words in err and err.count("\n") == 1, err
    assert not (Path(tiny_recipe["output_dir"]) / "stages").exists()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"training": {"validation_fraction": 0.99}}, "of the gt split, 1 training pairs (after 47 validation pairs)"),
        ({"training": {"gradient_accumulation_steps": 7}}, "fill no optimizer step of 56 pairs"),
        (
            {"label_filters": ["knn-relabel"], "probe": {"k": 40, "folds": 2}},
            "probe.k is 40, but a probe fold holds 24",
        ),
        ({"data": {"test_size": 1}}, "data.test_size: 1 pairs to evaluate on; the accuracy intervals"),
        (
            {"training": {"max_length": 1}},
            "training.max_length is 1 tokens, and cut there 39 of the first 48 pairs read",
        ),
    ],
    ids=[
        "validation takes almost all",
        "accumulation beyond the data",
        "more neighbours than pairs",
        "one test pair",
        "a length of one token",
    ],
)
def test_settings_that_leave_nothing_to_learn_stop_before_training(change, words, tiny_recipe, capsys):
    for key, value in change.items():
        tiny_recipe[key] = {**tiny_recipe.get(key, {}), **value} if isinstance(value, dict) else value
    path = Path(tiny_recipe["output_dir"]).parent / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err
    assert not (Path(tiny_recipe["output_dir"]) / "stages").exists()


TRAINER_MISTAKES = [
    ("a missing config", ["--config", "missing.yaml"], "--config missing.yaml: no such file"),
    ("a config directory", ["--config", "."], "--config .: a directory, not a file"),
    ("a broken config", ["--config", "broken.yaml"], "--config broken.yaml: not valid YAML"),
    ("a config key given twice", ["--config", "twice.yaml"], "the key 'learning_rate' is given twice"),
    ("a soft label that is text", ["--dataset_name", "text.jsonl"], "must be a probability in [0, 1], got 'high'"),
    ("a soft label above 1", ["--dataset_name", "above.jsonl"], "got 1.5"),
    ("a null soft label", ["--dataset_name", "null.jsonl"], "got None"),
    ("max_length 0", ["--max_length", "0"], "--max_length must be at least 1, got 0"),
    ("negative epochs", ["--num_train_epochs", "-1"], "--num_train_epochs must be above 0"),
    ("no such checkpoint", ["--resume_from_checkpoint", "out/checkpoint-9"], "checkpoint-9: no such directory"),
    ("a cut-short checkpoint", ["--resume_from_checkpoint", "cut"], "cut: not a whole checkpoint (its trainer_state"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "args", "words"), TRAINER_MISTAKES, ids=[case[0] for case in TRAINER_MISTAKES])
def test_a_trainer_command_mistake_stops_with_one_line(
    what, args, words, tiny_model_dir, tmp_path, capsys, monkeypatch
):
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.yaml").write_text("learning_rate: [\n")
    (tmp_path / "twice.yaml").write_text("learning_rate: 1.0e-4\nlearning_rate: 1.0e-3\n")
    (tmp_path / "cut").mkdir()  # a checkpoint whose save a full disk stopped: no trainer_state.json
    for name, label in (("ok", 0.8), ("text", "high"), ("above", 1.5), ("null", None)):
        rows = [
            {"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "soft_label": label} for i in range(8)
        ]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    base = ["reward", "--model_name_or_path", str(tiny_model_dir), "--dataset_name", "ok.jsonl", "--report_to", "none"]
    assert main([*base, "--output_dir", "out", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and err.startswith("error: "), err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_a_full_disk_while_a_trainer_command_saves_stops_with_one_line(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import json

    from safetensors import SafetensorError
    from transformers import Trainer

    def full(self, *args, **kwargs):  # safetensors' words on a full disk
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(Trainer, "save_model", full)
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(8)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    command = ["reward", "--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(tmp_path / "pairs.jsonl")]
    assert (
        main([*command, "-q", "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--max_steps", "1"]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: Error while serializing: I/O error: No space left"), err
    assert "to resume, run it again with --resume_from_checkpoint" in err


def test_models_that_cannot_fit_on_the_disk_stop_before_training(tiny_recipe, tmp_path, capsys, monkeypatch):
    import shutil

    disk_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda where: disk_usage(where)._replace(free=100_000))
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "the 4 models left to train take at least 0." in err and "MB, and its disk has 0.1 MB free" in err, err
    assert err.count("\n") == 1 and not (Path(tiny_recipe["output_dir"]) / "stages").exists()


def test_an_encoder_for_the_dpo_command_stops_with_one_line(tiny_model_dir, tmp_path, capsys):
    model = encoder_dir(tiny_model_dir, tmp_path / "mpnet")
    command = ["dpo", "--model_name_or_path", str(model), "--dataset_name", "x.jsonl", "--output_dir", str(tmp_path)]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--model_name_or_path {model} cannot be built as AutoModelForCausalLM" in err, err


def test_an_output_directory_on_a_file_system_that_refuses_folders_stops_with_one_line(tmp_path, capsys, monkeypatch):
    import errno
    import tempfile

    def read_only(*args, **kwargs):  # as on a read-only mount, where permissions still say "writable"
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    command = ["reward", "--model_name_or_path", "m", "--dataset_name", "x.jsonl", "--output_dir", str(tmp_path / "o")]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err == f"error: output_dir {tmp_path / 'o'}: cannot be written (Read-only file system in {tmp_path})\n"


def test_bf16_on_a_cpu_is_honoured_not_ignored(tiny_model_dir, tmp_path):
    """`--bf16 true` on a machine without an accelerator is accepted because transformers honours it (CPU autocast in
    bf16), as TRL's own trainers do; the device-derived default only fills an unset value."""
    import torch
    from datasets import Dataset

    from w2s_align.reward_trainer import W2SRewardConfig, W2SRewardTrainer

    pairs = Dataset.from_list([{"chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(4)])
    args = W2SRewardConfig(output_dir=str(tmp_path), bf16=True, use_cpu=True, report_to="none")
    trainer = W2SRewardTrainer(model=str(tiny_model_dir), args=args, train_dataset=pairs)
    assert trainer.accelerator.mixed_precision == "bf16"
    with trainer.accelerator.autocast():
        assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{% for m in messages %}", "not a valid Jinja template (line 1"),
        ("{{ raise_exception('no system role') }}", "the chat template fails on a one-turn conversation"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8 text"),
        (None, "no such file"),
    ],
    ids=["broken Jinja", "a template that raises", "a binary file", "missing"],
)
def test_a_broken_chat_template_in_a_recipe_stops_with_one_line(content, words, tmp_path, capsys):
    template = tmp_path / "chat.jinja"
    if isinstance(content, bytes):
        template.write_bytes(content)
    elif content is not None:
        template.write_text(content)
    rungs = [{"name": "weak", "model": "m", "chat_template_path": str(template)}, STRONG]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**BASE, "ladder": rungs}))
    stopped_cleanly(path, tmp_path / "run", capsys, f"'ladder.0.chat_template_path' {template}: {words}")
