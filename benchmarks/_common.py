"""Shared setup of the benchmarks: the model and the pairs every contender gets."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import transformers  # noqa: E402

from w2s_align.data import load_splits  # noqa: E402
from w2s_align.recipe import DataConfig  # noqa: E402

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
