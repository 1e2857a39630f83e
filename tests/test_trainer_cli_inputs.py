"""`w2s-align reward` / `w2s-align dpo` (issue 36): a malformed chat template, bad `--loss_weights`, a streamed soft
label out of range, a policy that is not a causal LM, quantization settings that cannot train and counts past their
bounds are refused with one line on stderr and exit code 2, without a traceback, before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from w2s_align.cli import main
from w2s_align.errors import W2SInputError

BIG = str(10**30)


def refused(args: list[str], capsys) -> str:
    """The one line `args` are refused with (exit code 2, no traceback)."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, (code, err)
    return err


def pairs_file(path: Path, labels: list, conversational: bool = False) -> Path:
    """Pairs with the soft labels `labels` (None: a null label)."""

    def text(role: str, content: str):
        return [{"role": role, "content": content}] if conversational else content

    rows = [
        {"prompt": text("user", f"q{i}"), "chosen": text("assistant", f"good {i}"),
         "rejected": text("assistant", f"bad {i}"), "soft_label": label}
        for i, label in enumerate(labels)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def command(name: str, model, data, tmp_path: Path, *extra: str) -> list[str]:
    return [name, "--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir",
            str(tmp_path / "out"), "--report_to", "none", "--save_strategy", "no", *extra]  # fmt: skip


# (a chat template file's name, how it is made in the test's folder or None for a missing path, the words refused with)
TEMPLATES = [
    ("missing.jinja", None, "missing.jinja: no such file"),
    ("no-such-dir/template", None, "template: no such file or directory"),
    ("broken.jinja", "{% for m in messages %}{{ m.content }", "not a valid Jinja template (line 1: unexpected '}')"),
    ("unclosed.jinja", "{% for m in messages %}{{ m.content }}", "not a valid Jinja template (line 1: Unexpected end"),
    ("filter.jinja", "{{ messages | frobnicate }}", "(line 1: No filter named 'frobnicate'"),
    ("binary.jinja", b"\x7fELF\x02\x01\x01\x00\xf0\x9f\x00\xff", "not UTF-8 text (a binary file?)"),
    ("nul.jinja", b"\x00\x00\x00\x00", "not text (it holds NUL bytes: a binary file?)"),
    ("empty.jinja", "\n", "the file is empty"),
    ("dir.jinja", "/", "a directory, not a Jinja file"),
    ("not-a-tokenizer", "/", "neither a Jinja file nor a tokenizer that loads"),
    ("raises.jinja", "{{ raise_exception('no system role') }}",
     "the chat template fails on a one-turn conversation (TemplateError: no system role)"),
    ("undefined.jinja", "{{ messages[0].content.frob() }}", "the chat template fails on a one-turn conversation"),
    ("template.txt", "{{ messages[0].content }}", "a template file must end in .jinja or .j2"),
]  # fmt: skip


def make(path: Path, content) -> None:
    if content == "/":
        path.mkdir(parents=True)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)


@pytest.mark.parametrize(("name", "content", "words"), TEMPLATES, ids=[case[0] for case in TEMPLATES])
def test_a_malformed_chat_template_stops_with_one_line_naming_the_flag_and_the_path(
    name, content, words, tiny_model_dir, tmp_path, capsys
):
    template = tmp_path / name
    make(template, content)
    data = pairs_file(tmp_path / "chat.jsonl", [0.8] * 4, conversational=True)
    err = refused(command("reward", tiny_model_dir, data, tmp_path, "--chat_template_path", str(template)), capsys)
    assert err.startswith(f"error: --chat_template_path {template}: ") and words in err, err


def test_a_tokenizer_without_a_template_to_copy_stops_with_one_line(tiny_model_dir, tmp_path, capsys):
    data = pairs_file(tmp_path / "chat.jsonl", [0.8] * 4, conversational=True)
    err = refused(
        command("reward", tiny_model_dir, data, tmp_path, "--chat_template_path", str(tiny_model_dir)), capsys
    )
    assert err == f"error: --chat_template_path {tiny_model_dir}: its tokenizer has no chat template to copy\n"


def test_the_template_check_takes_what_transformers_renders():
    """Templates that use transformers' own additions (the `generation` tag, `tojson`, the special tokens) pass; the
    check is importable without a model, for the recipe's `ladder.N.chat_template_path`."""
    from w2s_align.chat_templates import check_chat_template

    check_chat_template(
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content | tojson }}"
        "{% endgeneration %}{% else %}{{ m.content }}{% endif %}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}",
        "t.jinja",
    )
    with pytest.raises(W2SInputError, match=r"^recipe.yaml: 'ladder.0.chat_template_path': not a valid Jinja"):
        check_chat_template("{% if %}", "recipe.yaml: 'ladder.0.chat_template_path'")


@pytest.mark.slow
def test_a_good_jinja_template_trains_with_its_path_expanded(tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "chat.jinja").write_text("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}")
    data = pairs_file(tmp_path / "chat.jsonl", [0.8] * 4, conversational=True)
    argv = ["--chat_template_path", "~/chat.jinja", "--max_steps", "1", "--per_device_train_batch_size", "2"]
    assert main(command("reward", tiny_model_dir, data, tmp_path, *argv)) == 0


@pytest.mark.parametrize(
    ("weights", "words"),
    [
        (["-1"], "--loss_weights must be 0 or more, with one above 0 (each weighs a --loss_type), got [-1.0]"),
        (["0"], "--loss_weights must be 0 or more, with one above 0 (each weighs a --loss_type), got [0.0]"),
        (["nan"], "--loss_weights must be a finite number, got [nan]"),
        (["inf"], "--loss_weights must be a finite number, got [inf]"),
        (["0", "0"], "with one above 0"),
    ],
    ids=["negative", "zero", "nan", "inf", "all zero"],
)
def test_dpo_loss_weights_that_cannot_weigh_a_loss_stop_with_one_line(weights, words, tmp_path, capsys):
    losses = ["sigmoid", "hinge"][: len(weights)]
    argv = command("dpo", "m", "x.jsonl", tmp_path, "--loss_type", *losses, "--loss_weights", *weights)
    assert words in refused(argv, capsys)


@pytest.mark.parametrize(
    ("labels", "extra", "words"),
    [
        ([0.8] * 5 + [1.5, 0.8, 0.8], [], "row 5: 'soft_label' must be a probability in [0, 1], got 1.5"),
        ([0.8] * 3 + [-0.5] + [0.8] * 4, [], "row 3: 'soft_label' must be a probability in [0, 1], got -0.5"),
        ([0.8] * 2 + [None] + [0.8] * 5, [], "row 2: 'soft_label' must be a probability in [0, 1], got None"),
        ([0.8] * 5 + [1.5, 0.8, 0.8], ["--dataloader_num_workers", "1"], "row 5: 'soft_label' must be a probability"),
    ],
    ids=["above 1", "below 0", "null", "read by a worker process"],
)
def test_a_streamed_soft_label_out_of_range_stops_with_one_line_when_read(
    labels, extra, words, tiny_model_dir, tmp_path, capsys
):
    data = pairs_file(tmp_path / "pairs.jsonl", labels)
    stream = ["-q", "--dataset_streaming", "--max_steps", "4", "--per_device_train_batch_size", "2",
              "--train_sampling_strategy", "sequential", *extra]  # fmt: skip
    err = refused(command("reward", tiny_model_dir, data, tmp_path, *stream), capsys)
    assert err.startswith(f"error: --dataset_name {data}: split 'train', ") and words in err, err


def encoder(tiny_model_dir: Path, directory: Path, masked_lm: bool) -> Path:
    """A tiny BERT checkpoint (a bare encoder, or a masked LM) with the tiny GPT-2's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

    config = BertConfig(
        vocab_size=600, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    (BertForMaskedLM if masked_lm else BertModel)(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(directory)
    return directory


@pytest.mark.parametrize(
    ("kind", "architecture"),
    [("bert", "BertModel"), ("bert-mlm", "BertForMaskedLM"), ("gpt2-reward", "GPT2ForSequenceClassification")],
)
def test_a_dpo_policy_that_is_not_a_causal_lm_stops_with_one_line(
    kind, architecture, tiny_model_dir, tmp_path, capsys
):
    """TRL builds the policy as the checkpoint's `architectures` class: a BERT encoder (for which a causal LM class
    exists) or the tiny GPT-2 reward model is refused by what it is, not built as `AutoModelForCausalLM`."""
    model = tiny_model_dir if kind == "gpt2-reward" else encoder(tiny_model_dir, tmp_path / kind, kind == "bert-mlm")
    data = pairs_file(tmp_path / "pairs.jsonl", [0.8] * 4)
    err = refused(command("dpo", model, data, tmp_path, "--max_steps", "1"), capsys)
    assert err.startswith(f"error: --model_name_or_path {model} is not a causal language model (its architectures: ")
    assert architecture in err


QUANTIZATION = [
    ("without adapters", ["--load_in_4bit"], "--load_in_4bit needs --use_peft: a quantized model trains LoRA"),
    ("dtype auto", ["--load_in_4bit", "--use_peft", "--dtype", "auto"], "--dtype auto with --load_in_4bit"),
    (
        "a storage dtype bitsandbytes does not take",
        ["--load_in_4bit", "--use_peft", "--bnb_4bit_quant_storage", "frob"],
        "--load_in_4bit: `bnb_4bit_quant_storage` must be a valid string",
    ),
    (
        "a half-precision reward head input without mixed precision",
        ["--load_in_4bit", "--use_peft", "--dtype", "bfloat16", "--bf16", "false"],
        "--load_in_4bit with --dtype bfloat16: the quantized layers compute in bfloat16 but PEFT keeps the reward",
    ),
    (
        "8-bit likewise",
        ["--load_in_8bit", "--use_peft", "--dtype", "float16", "--bf16", "false"],
        "--load_in_8bit with --dtype float16",
    ),
]


@pytest.mark.parametrize(("what", "args", "words"), QUANTIZATION, ids=[case[0] for case in QUANTIZATION])
def test_quantization_settings_that_cannot_train_stop_with_one_line(what, args, words, tmp_path, capsys):
    assert words in refused(command("reward", "m", "x.jsonl", tmp_path, *args), capsys)


@pytest.mark.slow
def test_qlora_trains_on_a_cpu(wide_model_dir, tmp_path):
    """bitsandbytes' 4-bit layers run on a CPU here: QLoRA with the default dtype is accepted, not refused."""
    data = pairs_file(tmp_path / "pairs.jsonl", [0.8] * 4)
    argv = ["--load_in_4bit", "--use_peft", "--lora_target_modules", "c_attn", "c_proj", "--max_steps", "1",
            "--per_device_train_batch_size", "2"]  # fmt: skip
    assert main(command("reward", wide_model_dir, data, tmp_path, *argv)) == 0
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_one_lora_target_that_names_no_module_stops_with_one_line(tiny_model_dir, tmp_path, capsys):
    """TRL passes a single `--lora_target_modules` value to PEFT as a pattern of a whole module name."""
    data = pairs_file(tmp_path / "pairs.jsonl", [0.8] * 4)
    argv = command("reward", tiny_model_dir, data, tmp_path, "--use_peft", "--lora_target_modules", "c_attn")
    err = refused(argv, capsys)
    assert f"--lora_target_modules c_attn: no module of {tiny_model_dir} matches (one value alone is a" in err


# (the flag, an absurd value, the words refused with): counts that size work or memory, and any number not finite
COUNTS = [
    ("num_train_epochs", "1e30", "--num_train_epochs must be at most 1,000,000, got 1e+30"),
    ("num_train_epochs", "inf", "--num_train_epochs must be a finite number, got inf"),
    ("num_train_epochs", "nan", "--num_train_epochs must be a finite number, got nan"),
    ("max_steps", BIG, f"--max_steps must be at most 10,000,000, got {BIG}"),
    ("warmup_steps", "1e30", "--warmup_steps must be at most 10,000,000, got 1e+30"),
    ("max_length", BIG, "--max_length must be at most 16,777,216"),
    ("max_length", "1e30", "argument --max_length/--max-length: invalid int value: '1e30'"),
    ("per_device_train_batch_size", BIG, "--per_device_train_batch_size must be at most 1,048,576"),
    ("per_device_train_batch_size", "0", "--per_device_train_batch_size must be at least 1, got 0"),
    ("per_device_eval_batch_size", BIG, "--per_device_eval_batch_size must be at most 1,048,576"),
    ("gradient_accumulation_steps", BIG, "--gradient_accumulation_steps must be at most 1,048,576"),
    ("dataloader_num_workers", "1000000", "--dataloader_num_workers must be at most 256, got 1000000"),
    ("dataset_num_proc", BIG, "--dataset_num_proc must be at most 256"),
    ("pad_to_multiple_of", BIG, "--pad_to_multiple_of must be at most 16,777,216"),
    ("lora_r", "1000000000", "--lora_r must be at most 65,536, got 1000000000"),
    ("seed", str(2**32), "--seed must be at most 4,294,967,295, got 4294967296"),
    ("learning_rate", "nan", "--learning_rate must be a finite number, got nan"),
    ("logging_steps", "inf", "--logging_steps must be a finite number, got inf"),
]


@pytest.mark.parametrize(("flag", "value", "words"), COUNTS, ids=[f"{case[0]} {case[1][:8]}" for case in COUNTS])
def test_a_count_past_its_bound_or_a_number_not_finite_stops_with_one_line(flag, value, words, tmp_path, capsys):
    assert words in refused(command("reward", "m", "x.jsonl", tmp_path, f"--{flag}", value), capsys)


def test_a_number_in_the_config_file_is_named_too_where_transformers_overflows_on_it(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("save_strategy: steps\nsave_steps: .inf\n")  # TrainingArguments' int(inf) fails first
    argv = ["dpo", "--config", str(config), "--output_dir", str(tmp_path / "out")]
    assert "--save_steps must be a finite number, got inf" in refused(argv, capsys)
    config.write_text("precompute_ref_batch_size: 1000000000000\n")
    assert "--precompute_ref_batch_size must be at most 1,048,576, got 1000000000000" in refused(argv, capsys)


@pytest.mark.parametrize("name", ["reward", "dpo"])
def test_every_number_flag_refuses_a_value_that_is_not_finite(name, tmp_path, capsys):
    """Every float flag of the command, TRL's and ours, a new one included without a new test: `inf` (or `nan`) is
    refused naming the flag, never trained on and never a traceback."""
    from w2s_align.trainer_cli import make_parser

    flags = [action.dest for action in make_parser(name)._actions if action.type is float]
    assert {"learning_rate", "num_train_epochs", "warmup_steps", "aux_coef"} <= set(flags)
    wrong = {}
    for flag, value in ((flag, value) for flag in flags for value in ("inf", "nan")):
        code = main(command(name, "m", "x.jsonl", tmp_path, f"--{flag}", value))
        err = capsys.readouterr().err
        shown = [float(value)] if flag == "loss_weights" else value  # a list flag shows its list
        if (code, err) != (2, f"error: --{flag} must be a finite number, got {shown}\n"):
            wrong[f"--{flag} {value}"] = (code, err)
    assert wrong == {}
