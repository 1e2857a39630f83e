"""Shared setup of the benchmarks: the model and the pairs every contender gets."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from w2s_align.data import load_splits  # noqa: E402
from w2s_align.models import load_reward_model, load_tokenizer, resolve_model_path  # noqa: E402
from w2s_align.recipe import DataConfig, RungConfig  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-single-turn"


def quiet() -> None:
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def real_or_synthetic_pairs(n: int, seed: int = 0) -> tuple[datasets.Dataset, str]:
    """`n` single-turn HH-RLHF harmless test pairs when ../shared is present, else synthetic pairs."""
    if SHARED.is_dir():
        config = DataConfig(source="hh_single_turn", path=str(SHARED), gt_size=1, w2s_size=1, test_size=n, seed=seed)
        return load_splits(config)["test"], f"hh-single-turn test ({n} pairs)"
    config = DataConfig(source="synthetic", gt_size=1, w2s_size=1, test_size=n, seed=seed)
    return load_splits(config)["test"], f"synthetic ({n} pairs)"


def load_model(model_id: str, num_layers: int = 0):
    """The reward model (seeded head) and tokenizer as the pipeline loads them; `num_layers=0` keeps every layer."""
    torch.manual_seed(0)
    model = load_reward_model(RungConfig(name="bench", model=model_id, num_layers=num_layers or None))
    return model, load_tokenizer(resolve_model_path(model_id))


def device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
