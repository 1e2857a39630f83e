"""An offline causal-LM ladder: a tokenizer and GPT-2-style rungs of growing size, built and pretrained locally.

The DPO quickstart needs policies that load with no hub. The rungs `w2s-align/tiny-gpt2-xs`, `-s` and `-m` are
built on first use: a byte-level BPE tokenizer trained on the synthetic generator's text, and GPT-2 models briefly
pretrained (with TRL's `SFTTrainer` on plain text) on sentences that state which requests are harmful, over both
vocabulary halves (`w2s_align.synthetic.pretraining_texts`). Larger rungs absorb more of that knowledge, which is what
makes a weak-to-strong gap. Built models are cached under `$W2S_ALIGN_CACHE` (default `~/.cache/w2s_align`), keyed
by a hash of everything that determines them, and written atomically.

Example:

```python
>>> from w2s_align.models import resolve_model_path
>>> path = resolve_model_path("w2s-align/tiny-gpt2-s")  # builds and caches it the first time  # doctest: +SKIP
```
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .artifacts import atomic_directory
from .cache import config_hash

RUNGS = {
    "w2s-align/tiny-gpt2-xs": {"n_layer": 1, "n_embd": 32, "n_head": 2},
    "w2s-align/tiny-gpt2-s": {"n_layer": 2, "n_embd": 64, "n_head": 4},
    "w2s-align/tiny-gpt2-m": {"n_layer": 4, "n_embd": 128, "n_head": 4},
}
TOKENIZER = {"vocab_size": 1500, "texts": 6000, "seed": 0}
PRETRAINING = {"texts": 6000, "epochs": 1, "learning_rate": 3e-3, "batch_size": 32, "max_length": 64, "seed": 0}
EOS = "<|endoftext|>"
# Bump when a rung or the tokenizer is built differently; independent of the run stages' cache version.
LADDER_VERSION = 1
# What a cache directory that is not one for every node is called in the message that stops the run.
SHARED_CACHE = "the offline LM ladder's cache (W2S_ALIGN_CACHE)"


def cache_root() -> Path:
    return Path(os.environ.get("W2S_ALIGN_CACHE", Path.home() / ".cache" / "w2s_align"))


def build_tokenizer() -> Path:
    """The ladder's shared tokenizer (byte-level BPE with an eos/pad token), built once and cached."""
    target = cache_root() / "lm_ladder" / f"tokenizer-{config_hash(TOKENIZER, LADDER_VERSION)}"

    def build(directory: Path) -> None:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast

        from .synthetic import generate_pairs, pretraining_texts

        texts = pretraining_texts(TOKENIZER["texts"], seed=TOKENIZER["seed"])
        for pool in ("seen", "heldout"):
            for row in generate_pairs(TOKENIZER["texts"] // 4, seed=TOKENIZER["seed"], pool=pool):
                texts.append(row["prompt"] + row["chosen"] + row["rejected"])
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=TOKENIZER["vocab_size"],
            special_tokens=[EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,  # its progress bars leave blank lines in the run's output when not on a terminal
        )
        tokenizer.train_from_iterator(texts, trainer)
        fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=EOS, bos_token=EOS)
        fast.save_pretrained(directory)

    return atomic_directory(target, build, SHARED_CACHE)


def _announce(name: str, target: Path) -> None:
    """Minutes of pretraining on a CPU (85 s for the middle rung on 2 cores), once per machine: say so first."""
    import logging

    logging.getLogger("w2s_align").info(
        f"building the offline LM ladder's {name} (pretrained once; cached in {target})"
    )


# What a launcher (torchrun, accelerate launch, DeepSpeed) tells a process about the others.
_LAUNCH_VARIABLES = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK",
    "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT",
)  # fmt: skip
_LAUNCH_PREFIXES = ("ACCELERATE_", "TORCHELASTIC_", "FSDP_", "TORCH_NCCL_")


def _built_alone(name: str, target: Path) -> Path:
    """Under a launch of several processes: the main process pretrains the rung in a process of its own, started as a
    single one (without the launcher's variables), while the others wait. The rung is then the one a single process
    builds, whatever the launch: pretrained by N processes, each with the per-device batch, it differed, and so did
    every later run that found it in the cache (whose key holds no process count)."""
    import subprocess
    import sys

    from .distributed import DEFAULT_TIMEOUT, broadcast, check_shared, is_main_process

    check_shared(target.parent, SHARED_CACHE)
    error = None
    if is_main_process() and not target.is_dir():
        _announce(name, target)
        env = {
            k: v for k, v in os.environ.items() if k not in _LAUNCH_VARIABLES and not k.startswith(_LAUNCH_PREFIXES)
        }
        code = f"from w2s_align.lm_ladder import build_rung; build_rung({name!r})"
        try:  # bounded as the waiting processes are (the largest rung takes minutes on a CPU)
            done = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=DEFAULT_TIMEOUT
            )
            if done.returncode:
                error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        except subprocess.TimeoutExpired:
            error = f"not built within {DEFAULT_TIMEOUT:.0f} s"
    error = broadcast(error)  # the others wait here, within the process group's timeout
    if error is not None:
        raise RuntimeError(f"building the offline LM ladder's {name} failed: {error}")
    return target


def build_rung(name: str) -> Path:
    """Build (or find in the cache) the ladder rung `name`, a pretrained GPT-2-style causal LM with its tokenizer."""
    if name not in RUNGS:
        raise KeyError(f"{name!r} is not a rung of the offline LM ladder; rungs: {sorted(RUNGS)}")
    spec = {"rung": RUNGS[name], "tokenizer": TOKENIZER, "pretraining": PRETRAINING}
    target = cache_root() / "lm_ladder" / f"{name.split('/')[-1]}-{config_hash(spec, LADDER_VERSION)}"

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return _built_alone(name, target)

    def build(directory: Path) -> None:
        import torch
        from datasets import Dataset
        from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

        from .sft import W2SSFTConfig, supervised_finetune
        from .synthetic import pretraining_texts

        _announce(name, target)  # one process builds here: a launch of several builds through _built_alone
        tokenizer = AutoTokenizer.from_pretrained(build_tokenizer())
        torch.manual_seed(PRETRAINING["seed"])
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=256,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **RUNGS[name],
        )
        model = GPT2LMHeadModel(config)
        texts = pretraining_texts(PRETRAINING["texts"], seed=PRETRAINING["seed"])
        args = W2SSFTConfig(
            output_dir=str(directory / "checkpoints"),
            num_train_epochs=PRETRAINING["epochs"],
            learning_rate=PRETRAINING["learning_rate"],
            per_device_train_batch_size=PRETRAINING["batch_size"],
            max_length=PRETRAINING["max_length"],
            packing=False,  # padding-free packing is ~10x slower on CPU, and the texts are short anyway
            seed=PRETRAINING["seed"],
            report_to=[],
            save_strategy="no",
            logging_steps=50,
            disable_tqdm=True,
        )
        model.config._name_or_path = name
        # Saved through the trainer, on every process: DeepSpeed ZeRO-3 gathers the partitioned weights first.
        supervised_finetune(model, tokenizer, Dataset.from_dict({"text": texts}), args, save_to=directory)
        shutil.rmtree(directory / "checkpoints", ignore_errors=True)

    return atomic_directory(target, build, SHARED_CACHE)
