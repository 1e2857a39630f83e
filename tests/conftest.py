"""Shared fixtures: a tiny GPT-2 reward model and tokenizer built locally, and the real data under ../shared/data."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "audit"))
import write_audit  # noqa: E402, F401  (the write audit of the tests that count who writes what, in this process)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs a worker per core (pytest-xdist): one thread each, in the processes they start too, or two
    # workers' matrix products contend for both cores (the fast tier took 157 s that way, 73 s on one thread each).
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real preference data beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (the ../shared folder beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer GPT-2 with a byte-level BPE tokenizer trained here on synthetic pairs, saved as a local model."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), width=32)


@pytest.fixture(scope="session")
def wide_model_dir(tmp_path_factory) -> Path:
    """The tiny GPT-2 at width 64: bitsandbytes' 4-bit CPU kernels on AVX512-BF16 machines need 64-wide blocks."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("wide-gpt2"), width=64)


def build_tiny_gpt2(directory: Path, width: int) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

    from w2s_align.synthetic import generate_pairs

    pairs = generate_pairs(400, seed=123)
    texts = [row["prompt"] + row["chosen"] + row["rejected"] for row in pairs]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>")
    fast.save_pretrained(directory)
    config = GPT2Config(
        vocab_size=fast.vocab_size,
        n_positions=256,
        n_embd=width,
        n_layer=2,
        n_head=2,
        num_labels=1,
        pad_token_id=fast.eos_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=fast.eos_token_id,
    )
    import torch

    torch.manual_seed(0)
    GPT2ForSequenceClassification(config).save_pretrained(directory)
    return directory


@pytest.fixture
def tiny_recipe(tiny_model_dir, tmp_path) -> dict:
    """A recipe (as a dict) that runs in seconds on the tiny model and synthetic data."""
    return {
        "name": "tiny",
        "output_dir": str(tmp_path / "run"),
        "seeds": [0],
        "data": {"source": "synthetic", "gt_size": 48, "w2s_size": 48, "test_size": 40, "seed": 0},
        "training": {
            "learning_rate": 1e-3,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 8,
            "max_length": 96,
            "eval_batch_size": 32,
        },
        "ladder": [
            {"name": "tiny-l1", "model": str(tiny_model_dir), "num_layers": 1},
            {"name": "tiny-l2", "model": str(tiny_model_dir)},
        ],
        "methods": ["xent", "logconf"],
    }


# The longest tests first (each a minute or more on one core: TRL's suite, DeepSpeed on two processes), then the
# other slow ones: xdist hands the tests out one at a time in this order (`--dist loadgroup`, a group as a whole), so
# that the run does not end with one worker on a long test while the other idles.
LONGEST = ("tests/test_trl_suite.py::", "tests/test_distributed.py::test_deepspeed_on_two_cpu_processes")


def pytest_collection_modifyitems(config, items) -> None:
    def rank(item) -> int:
        longest = [index for index, prefix in enumerate(LONGEST) if item.nodeid.startswith(prefix)]
        if longest:
            return longest[0]
        return len(LONGEST) if item.get_closest_marker("slow") else len(LONGEST) + 1

    items.sort(key=rank)


def pytest_collection_finish(session) -> None:
    # The test modules and the libraries they import are loaded: move them out of the garbage collector's reach.
    # A full collection otherwise walks their ~540k long-lived objects (0.3 s), and accelerate and the stages collect
    # after every model they train.
    gc.freeze()
