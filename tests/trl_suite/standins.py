"""Local stand-ins for the Hub artifacts that TRL's reward and DPO trainer tests load (`trl-internal-testing/...`).

Nothing is downloaded: each tiny model is built here from its transformers config class, with the sizes TRL's
`scripts/generate_tiny_models/` use, and a byte-level BPE tokenizer trained here on the stand-in data, carrying the
special tokens and the chat template (from the installed TRL's `trl/chat_templates/`) of the tokenizer the real tiny
model copies. The models are written into a Hugging Face Hub cache directory (`<cache>/hub`, the layout
`huggingface_hub` reads with `HF_HUB_OFFLINE=1`), so `from_pretrained("trl-internal-testing/tiny-...")` finds them
unchanged, remote code included. The datasets (`trl-internal-testing/zen`, `toolcall`, `harmony`) are written as
parquet files in the same formats (columns, conversational or standard, 17/2 train/test rows like the Zen ones);
the pytest plugin routes `load_dataset` to them. Their text is written here, not copied from TRL.

`build(cache_dir)` is idempotent: a stamp of this file's content marks a finished build.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORG = "trl-internal-testing"

# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------

# (prompt, chosen completion, rejected completion, question, short answer): the Zen of Python split at a word.
ZEN = [
    ("Beautiful is better than", " ugly.", " a spreadsheet.", "What is better than ugly?", "Beautiful."),
    ("Explicit is better", " than implicit.", " than nothing at all.", "What is better than implicit?", "Explicit."),
    ("Simple is better", " than complex.", " than a holiday.", "What is better than complex?", "Simple."),
    ("Complex is better", " than complicated.", " than the weather.", "What is better than complicated?", "Complex."),
    ("Flat is better than", " nested.", " round.", "What is better than nested?", "Flat."),
    ("Sparse is better", " than dense.", " with extra cheese.", "What is better than dense?", "Sparse."),
    ("Readability", " counts.", " is for later.", "What counts?", "Readability."),
    (
        "Special cases aren't special",
        " enough to break the rules.",
        " unless it is a Tuesday.",
        "Are special cases enough to break the rules?",
        "No, special cases aren't special enough to break the rules.",
    ),
    ("Although practicality beats", " purity.", " the drums.", "What beats purity?", "Practicality."),
    ("Errors should never", " pass silently.", " be read.", "What should never pass silently?", "Errors."),
    ("Unless explicitly", " silenced.", " encouraged.", "When can errors pass silently?", "When explicitly silenced."),
    (
        "In the face of ambiguity, refuse",
        " the temptation to guess.",
        " to answer the phone.",
        "What should you do in the face of ambiguity?",
        "Refuse the temptation to guess.",
    ),
    (
        "There should be one-- and preferably",
        " only one --obvious way to do it.",
        " seven ways nobody remembers.",
        "How many ways should there be to do it?",
        "One, and preferably only one, obvious way.",
    ),
    (
        "Although that way may not be obvious at first unless you're",
        " Dutch.",
        " a cat.",
        "For whom may the way not be obvious at first?",
        "For anyone who is not Dutch.",
    ),
    ("Now is", " better than never.", " too early.", "What is better than never?", "Now."),
    (
        "Although never is often",
        " better than *right* now.",
        " on a boat.",
        "Is never better than *right* now?",
        "Often, yes.",
    ),
    (
        "If the implementation is hard to explain,",
        " it's a bad idea.",
        " ship it anyway.",
        "What does it mean if the implementation is hard to explain?",
        "It's a bad idea.",
    ),
    (
        "If the implementation is easy to explain,",
        " it may be a good idea.",
        " it must be wrong.",
        "What does it mean if the implementation is easy to explain?",
        "It may be a good idea.",
    ),
    (
        "Namespaces are one honking great",
        " idea -- let's do more of those!",
        " mystery -- let's hide them!",
        "Any great ideas?",
        "Namespaces -- let's do more of those!",
    ),
]
WRONG_ANSWERS = [
    "Ugly.", "Implicit.", "Complex.", "Complicated.", "Nested.", "Dense.", "Nothing.", "Yes, always.", "Purity.",
    "Warnings.", "Never.", "Guess.", "As many as possible.", "Everyone.", "Never.", "Always.", "It's genius.",
    "It's wrong.", "Global variables.",
]  # fmt: skip


def _split(rows: dict, n_test: int) -> dict:
    """As `train_test_split(test_size=0.1, shuffle=False)` in the Hub generators: the last rows are the test split."""
    n = len(next(iter(rows.values())))
    return {
        "train": {k: v[: n - n_test] for k, v in rows.items()},
        "test": {k: v[n - n_test :] for k, v in rows.items()},
    }


def zen_configs() -> dict[str, dict]:
    user = [[{"role": "user", "content": q}] for *_, q, _ in ZEN]
    good = [[{"role": "assistant", "content": a}] for *_, a in ZEN]
    bad = [[{"role": "assistant", "content": a}] for a in WRONG_ANSWERS]
    configs = {
        "standard_preference": {
            "prompt": [p for p, *_ in ZEN],
            "chosen": [c for _, c, *_ in ZEN],
            "rejected": [r for _, _, r, *_ in ZEN],
        },
        "standard_implicit_prompt_preference": {
            "chosen": [p + c for p, c, *_ in ZEN],
            "rejected": [p + r for p, _, r, *_ in ZEN],
        },
        "standard_unpaired_preference": {
            "prompt": [p for p, *_ in ZEN],
            "completion": [c if i % 3 else r for i, (_, c, r, *_) in enumerate(ZEN)],
            "label": [bool(i % 3) for i in range(len(ZEN))],
        },
        "conversational_preference": {"prompt": user, "chosen": good, "rejected": bad},
        "conversational_implicit_prompt_preference": {
            "chosen": [u + g for u, g in zip(user, good)],
            "rejected": [u + b for u, b in zip(user, bad)],
        },
    }
    return {name: _split(rows, 2) for name, rows in configs.items()}


def harmony_configs() -> dict[str, dict]:
    user = [[{"role": "user", "content": q}] for *_, q, _ in ZEN]
    chosen = [[{"role": "assistant", "thinking": f"The aphorism says: {p}{c}", "content": a}] for p, c, _, _, a in ZEN]
    rejected = [[{"role": "assistant", "thinking": "I will make something up.", "content": w}] for w in WRONG_ANSWERS]
    return {"preference": _split({"prompt": user, "chosen": chosen, "rejected": rejected}, 2)}


def _tool_schemas():
    from transformers.utils import get_json_schema

    def set_timer(seconds: int) -> int:
        """
        Sets a timer.

        Args:
            seconds: How long the timer runs, in seconds.
        """
        return seconds

    def local_time(city: str) -> str:
        """
        Tells the time in a city.

        Args:
            city: The city.
        """
        return "08:15"

    def pollen_level(city: str) -> int:
        """
        Gives today's pollen level in a city.

        Args:
            city: The city.
        """
        return 3

    def play_song(title: str, artist: str) -> dict:
        """
        Plays a song.

        Args:
            title: The song's title.
            artist: The performer.
        """
        return {"status": "playing"}

    def forecast(city: str, day: str) -> dict:
        """
        Gives the weather forecast.

        Args:
            city: The city.
            day: The day, as YYYY-MM-DD.
        """
        return {"high": 19, "sky": "cloudy"}

    def switch_lamp(room: str, on: bool) -> dict:
        """
        Switches a lamp.

        Args:
            room: The room of the lamp.
            on: Whether to switch it on.
        """
        return {"on": on}

    def add_note(text: str) -> str:
        """
        Saves a note.

        Args:
            text: The note.
        """
        return "saved"

    def tide_times(port: str) -> list:
        """
        Gives today's high tides in a port.

        Args:
            port: The port.
        """
        return ["06:10", "18:32"]

    return [
        get_json_schema(f)
        for f in (set_timer, local_time, pollen_level, play_song, forecast, switch_lamp, add_note, tide_times)
    ]


def toolcall_configs() -> dict[str, dict]:
    def call(name, **arguments):
        return {
            "role": "assistant",
            "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}],
        }

    def answer(text):
        return {"role": "assistant", "content": text}

    def tool(name, content):
        return {"role": "tool", "name": name, "content": content}

    rows = [  # (question, chosen conversation, rejected conversation)
        ("Set a timer for two minutes.",
         [call("set_timer", seconds=120), tool("set_timer", "120"), answer("Your two-minute timer is running.")],
         [call("set_timer", seconds=2), tool("set_timer", "2"), answer("Timer set for two seconds.")]),
        ("What time is it in Oslo?",
         [call("local_time", city="Oslo"), tool("local_time", "08:15"), answer("It is 08:15 in Oslo.")],
         [answer("It is probably noon in Oslo.")]),
        ("Is there much pollen in Vienna today?",
         [call("pollen_level", city="Vienna"), tool("pollen_level", "3"), answer("The pollen level is moderate.")],
         [call("pollen_level", city="Venice"), tool("pollen_level", "3"), answer("There is no pollen at all.")]),
        ("Play something by Nina Simone.",
         [call("play_song", title="Feeling Good", artist="Nina Simone"), tool("play_song", "{'status': 'playing'}"),
          answer("Playing Feeling Good by Nina Simone.")],
         [call("play_song", title="Feeling Good", artist="Muse"), tool("play_song", "{'status': 'playing'}"),
          answer("Playing a song.")]),
        ("Will it rain in Porto on Friday?",
         [call("forecast", city="Porto", day="2025-10-03"), tool("forecast", "{'high': 19, 'sky': 'cloudy'}"),
          answer("Friday in Porto looks cloudy, with a high of 19°C.")],
         [answer("Porto will be sunny all week.")]),
        ("Turn off the kitchen lamp.",
         [call("switch_lamp", room="kitchen", on=False), tool("switch_lamp", "{'on': False}"),
          answer("The kitchen lamp is off.")],
         [call("switch_lamp", room="kitchen", on=True), tool("switch_lamp", "{'on': True}"),
          answer("The kitchen lamp is on.")]),
        ("Note that the plumber comes on Monday.",
         [call("add_note", text="Plumber comes on Monday"), tool("add_note", "saved"), answer("Noted.")],
         [call("add_note", text="Plumber"), tool("add_note", "saved"), answer("I saved a note about Tuesday.")]),
        ("When is high tide in Brest?",
         [call("tide_times", port="Brest"), tool("tide_times", "['06:10', '18:32']"),
          answer("High tide in Brest is at 06:10 and 18:32.")],
         [call("forecast", city="Brest", day="2025-10-03"), tool("forecast", "{'high': 15, 'sky': 'rain'}"),
          answer("High tide is at 15:00.")]),
    ]  # fmt: skip
    schemas = _tool_schemas()
    columns = {
        "prompt": [[{"role": "user", "content": q}] for q, _, _ in rows],
        "chosen": [c for _, c, _ in rows],
        "rejected": [r for _, _, r in rows],
        # A JSON string, as on the Hub (the tests `json.loads` it); each row offers the tool its question needs.
        "tools": [json.dumps([schema]) for schema in schemas],
    }
    return {"preference": _split(columns, 1)}


def zen_image_configs() -> dict[str, dict]:
    """`conversational_preference` with one small random RGB image per row (`image` column), as on the Hub."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    columns = dict(zen_configs()["conversational_preference"]["train"])
    for key, values in zen_configs()["conversational_preference"]["test"].items():
        columns[key] = columns[key] + values
    sizes = rng.integers(32, 64, size=(len(ZEN), 2))
    columns["image"] = [
        Image.fromarray(rng.uniform(0.0, 255.0, size=(h, w, 3)).astype(np.uint8)) for h, w in sizes.tolist()
    ]
    return {"conversational_preference": _split(columns, 2)}


DATASETS = {
    "zen": zen_configs,
    "zen-image": zen_image_configs,
    "harmony": harmony_configs,
    "toolcall": toolcall_configs,
}


def write_datasets(root: Path) -> None:
    from datasets import Dataset

    for name, make in DATASETS.items():
        for config, splits in make().items():
            for split, columns in splits.items():
                path = root / name / config / f"{split}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                # Mixed message schemas (tool calls beside plain answers) are stored as JSON, as the Hub generators do.
                Dataset.from_dict(columns, on_mixed_types="use_json").to_parquet(str(path))


def corpus() -> list[str]:
    texts = []
    for splits in [*zen_configs().values(), *harmony_configs().values(), *toolcall_configs().values()]:
        for columns in splits.values():
            for values in columns.values():
                texts.extend(json.dumps(v) if not isinstance(v, str) else v for v in values)
    templates = Path(__import__("trl").__file__).parent / "chat_templates"
    texts.extend(p.read_text() for p in sorted(templates.glob("*.jinja")))
    return texts


# ----------------------------------------------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------------------------------------------

PIPE_TOKEN = r"<\|[^|<>\s]+\|>"
TAG_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]


def template_text(name: str | None) -> str | None:
    if name is None:
        return None
    return (Path(__import__("trl").__file__).parent / "chat_templates" / f"{name}.jinja").read_text()


def special_tokens(template: str | None, extra: list[str]) -> list[str]:
    import re

    found = re.findall(PIPE_TOKEN, template or "")
    found += [t for t in TAG_TOKENS if template and t in template]
    out = []
    for token in [*extra, *found]:
        if token and token not in out:
            out.append(token)
    return out


def train_base_tokenizer(vocab_size: int = 700):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(corpus(), trainer)
    return tokenizer


def make_tokenizer(base_json: str, spec: dict):
    """A fast tokenizer: the shared BPE plus this model family's special tokens, chat template, bos/eos/pad."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    template = template_text(spec.get("template"))
    named = [spec.get(k) for k in ("bos", "eos", "pad")]
    tokens = special_tokens(template, [t for t in named if t] + spec.get("extra", []))
    raw = Tokenizer.from_str(base_json)
    raw.add_special_tokens(tokens)
    if spec.get("add_bos"):
        bos = spec["bos"]
        raw.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, raw.token_to_id(bos))]
        )
    kwargs = {k + "_token": spec[k] for k in ("bos", "eos", "pad") if spec.get(k)}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, **kwargs)
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


# Tokenizer families: the special tokens of the tokenizer each TRL tiny model copies, and its chat template.
TOKENIZERS = {
    "qwen2.5": {"template": "qwen2_5", "eos": "<|im_end|>", "pad": "<|endoftext|>"},
    "qwen3": {"template": "qwen3", "eos": "<|im_end|>", "pad": "<|endoftext|>"},
    "llama3.2": {"template": "llama3_2", "bos": "<|begin_of_text|>", "eos": "<|eot_id|>", "add_bos": True},
    "gpt-oss": {"template": "gptoss", "bos": "<|startoftext|>", "eos": "<|return|>", "pad": "<|endoftext|>"},
    "cohere2": {
        "template": "cohere2",
        "bos": "<BOS_TOKEN>",
        "eos": "<|END_OF_TURN_TOKEN|>",
        "pad": "<PAD>",
        "add_bos": True,
    },
    "glm4.5": {"template": "glm4moe", "eos": "<|endoftext|>", "pad": "<|endoftext|>", "extra": ["[gMASK]", "<sop>"]},
    "nemotron3": {"template": "nemotron_3_nano", "bos": "<s>", "eos": "<|im_end|>", "pad": "<unk>"},
    "lfm2": {"template": "lfm2", "bos": "<|startoftext|>", "eos": "<|im_end|>", "pad": "<|pad|>", "add_bos": True},
    "lfm2.5": {
        "template": "lfm2_2_5",
        "bos": "<|startoftext|>",
        "eos": "<|im_end|>",
        "pad": "<|pad|>",
        "add_bos": True,
    },
    "olmo3": {"template": None, "eos": "<|endoftext|>", "pad": "<|pad|>"},
    "pythia": {"template": None, "bos": "<|endoftext|>", "eos": "<|endoftext|>"},
}

# ----------------------------------------------------------------------------------------------------------------
# Models: repo id -> (transformers class, config class, config kwargs, tokenizer family, saved dtype)
# ----------------------------------------------------------------------------------------------------------------

SMALL = dict(hidden_size=8, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2, intermediate_size=32)

MODELS = {
    f"{ORG}/tiny-Qwen2ForCausalLM-2.5": ("Qwen2ForCausalLM", "Qwen2Config", SMALL, "qwen2.5", "bfloat16"),
    f"{ORG}/tiny-Qwen2ForSequenceClassification-2.5": (
        "Qwen2ForSequenceClassification",
        "Qwen2Config",
        {**SMALL, "hidden_size": 16, "num_labels": 1},
        "qwen2.5",
        "bfloat16",
    ),
    f"{ORG}/tiny-Qwen3MoeForCausalLM": (
        "Qwen3MoeForCausalLM",
        "Qwen3MoeConfig",
        {**SMALL, "num_experts": 4, "num_experts_per_tok": 2, "norm_topk_prob": True, "head_dim": 128},
        "qwen3",
        "bfloat16",
    ),
    f"{ORG}/tiny-LlamaForCausalLM-3.2": ("LlamaForCausalLM", "LlamaConfig", SMALL, "llama3.2", "bfloat16"),
    f"{ORG}/tiny-GPTNeoXForCausalLM": ("GPTNeoXForCausalLM", "GPTNeoXConfig", SMALL, "pythia", "float16"),
    f"{ORG}/tiny-GptOssForCausalLM": (
        "GptOssForCausalLM",
        "GptOssConfig",
        {**SMALL, "num_local_experts": 4, "num_experts_per_tok": 2},
        "gpt-oss",
        "bfloat16",
    ),
    f"{ORG}/tiny-Cohere2ForCausalLM": (
        "Cohere2ForCausalLM",
        "Cohere2Config",
        {**SMALL, "logit_scale": 1.0},
        "cohere2",
        "bfloat16",
    ),
    f"{ORG}/tiny-Glm4MoeForCausalLM": (
        "Glm4MoeForCausalLM",
        "Glm4MoeConfig",
        {
            **SMALL,
            "moe_intermediate_size": 32,
            "head_dim": 2,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "attention_bias": True,
            "routed_scaling_factor": 2.5,
            "use_qk_norm": True,
        },
        "glm4.5",
        "bfloat16",
    ),
    f"{ORG}/tiny-NemotronHForCausalLM-nano": (
        "NemotronHForCausalLM",
        "NemotronHConfig",
        {
            "hidden_size": 16,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 32,
            "layers_block_type": ["mamba", "attention", "moe"],
            "mamba_num_heads": 8,
            "mamba_head_dim": 4,
            "mamba_n_groups": 1,
            "ssm_state_size": 16,
            "mamba_d_conv": 4,
            "mamba_expand": 2,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "moe_shared_expert_intermediate_size": 32,
        },
        "nemotron3",
        "bfloat16",
    ),
    f"{ORG}/tiny-Olmo3ForCausalLM": (
        "Olmo3ForCausalLM",
        "Olmo3Config",
        {**SMALL, "use_cache": False},
        "olmo3",
        "bfloat16",
    ),
    f"{ORG}/tiny-Lfm2ForCausalLM": (
        "Lfm2ForCausalLM",
        "Lfm2Config",
        {**SMALL, "full_attn_idxs": [1], "block_multiple_of": 8, "conv_L_cache": 3, "use_cache": False},
        "lfm2",
        "bfloat16",
    ),
    f"{ORG}/tiny-Lfm2ForCausalLM-2.5": (
        "Lfm2ForCausalLM",
        "Lfm2Config",
        {
            **SMALL,
            "layer_types": ["conv", "full_attention"],
            "conv_L_cache": 3,
            "block_auto_adjust_ff_dim": False,
            "use_cache": False,
        },
        "lfm2.5",
        "bfloat16",
    ),
    # A LlamaForCausalLM checkpoint whose config names classes that only its own code files define.
    f"{ORG}/tiny-RemoteForCausalLM": ("LlamaForCausalLM", "LlamaConfig", SMALL, "llama3.2", "bfloat16"),
}
# Tokenizer-only repos (the tests read a chat template from them), with a config so AutoTokenizer finds its class.
TOKENIZER_ONLY = {"Qwen/Qwen3-4B": ("qwen3", "Qwen3Config")}

REMOTE_CONFIG = '''from transformers import LlamaConfig


class RemoteConfig(LlamaConfig):
    """A Llama config under a model type transformers does not know: loadable only with trust_remote_code."""

    model_type = "remote"
'''
REMOTE_MODELING = """import torch.nn as nn
from transformers import LlamaForCausalLM, LlamaForSequenceClassification, LlamaModel, LlamaPreTrainedModel

from .configuration_remote import RemoteConfig


class RemoteModel(LlamaModel):
    config_class = RemoteConfig


class RemoteForCausalLM(LlamaForCausalLM):
    config_class = RemoteConfig


class RemoteForSequenceClassification(LlamaForSequenceClassification):
    config_class = RemoteConfig

    def __init__(self, config):
        # Built directly: AutoModel.from_config would ask for trust_remote_code again.
        LlamaPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.model = RemoteModel(config)
        self.score = nn.Linear(config.hidden_size, self.num_labels, bias=False)
        self.post_init()
"""


def init_tiny(model) -> None:
    """Small, finite weights: Xavier-uniform linear layers with zero biases, N(0, 0.02) embeddings, unit norms."""
    import torch
    from torch import nn

    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    with torch.no_grad():  # parameters outside those layers (MoE expert banks, SSM parameters) stay finite
        for param in model.parameters():
            if not torch.isfinite(param).all():
                param.normal_(0.0, 0.02)


def fake_commit(repo_id: str, stamp: str) -> str:
    return hashlib.sha1(f"{repo_id}@{stamp}".encode()).hexdigest()


def snapshot_dir(hub: Path, repo_id: str, stamp: str, kind: str = "models") -> Path:
    repo = hub / f"{kind}--{repo_id.replace('/', '--')}"
    commit = fake_commit(repo_id, stamp)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    path = repo / "snapshots" / commit
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_model(repo_id: str, spec: tuple, tokenizer, path: Path) -> None:
    import torch
    import transformers
    from transformers import GenerationConfig

    arch, config_name, kwargs, _, dtype = spec
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = getattr(transformers, config_name)(vocab_size=len(tokenizer), **ids, **kwargs)
    torch.manual_seed(0)
    model = getattr(transformers, arch)(config)
    init_tiny(model)
    model.to(getattr(torch, dtype))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if model.can_generate():
        GenerationConfig(**{k: v for k, v in ids.items() if v is not None}).save_pretrained(path)
    if repo_id.endswith("tiny-RemoteForCausalLM"):
        config_path = path / "config.json"
        data = json.loads(config_path.read_text())
        data["model_type"] = "remote"
        data["architectures"] = ["RemoteForCausalLM"]
        data["auto_map"] = {
            "AutoConfig": "configuration_remote.RemoteConfig",
            "AutoModel": "modeling_remote.RemoteModel",
            "AutoModelForCausalLM": "modeling_remote.RemoteForCausalLM",
            "AutoModelForSequenceClassification": "modeling_remote.RemoteForSequenceClassification",
        }
        config_path.write_text(json.dumps(data, indent=2))
        (path / "configuration_remote.py").write_text(REMOTE_CONFIG)
        (path / "modeling_remote.py").write_text(REMOTE_MODELING)


def stamp() -> str:
    import transformers
    import trl

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"{transformers.__version__} {trl.__version__}".encode())
    return digest.hexdigest()[:16]


def build(cache_dir: Path, log=print) -> Path:
    """Build every stand-in under `cache_dir` (skipped when a finished build of this file's version is there)."""
    cache_dir = Path(cache_dir)
    key = stamp()
    done = cache_dir / f"standins-{key}.done"
    if done.exists():
        return cache_dir
    for stale in cache_dir.glob("standins-*.done"):
        stale.unlink()
    for sub in ("hub", "data", "datasets-cache", "modules"):
        shutil.rmtree(cache_dir / sub, ignore_errors=True)
    hub = cache_dir / "hub"
    log(f"building stand-in datasets and models in {cache_dir} ...")
    write_datasets(cache_dir / "data")
    base_json = train_base_tokenizer().to_str()
    tokenizers = {name: make_tokenizer(base_json, spec) for name, spec in TOKENIZERS.items()}
    for repo_id, spec in MODELS.items():
        build_model(repo_id, spec, tokenizers[spec[3]], snapshot_dir(hub, repo_id, key))
    for repo_id, (family, config_name) in TOKENIZER_ONLY.items():
        import transformers

        path = snapshot_dir(hub, repo_id, key)
        tokenizers[family].save_pretrained(path)
        getattr(transformers, config_name)(vocab_size=len(tokenizers[family]), **SMALL).save_pretrained(path)
    done.write_text(json.dumps({"models": sorted(MODELS), "tokenizers": sorted(TOKENIZER_ONLY)}, indent=2))
    return cache_dir


if __name__ == "__main__":
    import sys

    build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / ".cache")
