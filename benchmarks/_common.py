"""Shared setup of the benchmarks: the model and the pairs every contender gets."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # else DeepSpeed, when installed, warns on import

import datasets  # noqa: E402
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


def compare_step_times(run_one, steps: int, warmup: int, repeats: int, batch: int, **common) -> dict:
    """Median step time of TRL and the W2S trainer (xent, logconf), interleaved over repeats with the order rotated.

    `run_one(name, common_kwargs)` trains one contender and returns its per-step times. The ratio to TRL is the median
    of the per-repeat ratios.
    """
    import statistics

    names = ["trl", "xent", "logconf"]
    kwargs = dict(
        per_device_train_batch_size=batch,
        max_steps=steps + warmup,
        learning_rate=1e-5,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1000,
        seed=0,
        **common,
    )
    times = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names[repeat % 3 :] + names[: repeat % 3]:
            times[name].append(statistics.median(run_one(name, kwargs)[warmup:]))
    return {
        "seconds_per_step": {name: statistics.median(values) for name, values in times.items()},
        "ratio_vs_trl": {
            name: statistics.median(t / ref for t, ref in zip(times[name], times["trl"])) for name in names
        },
        "per_repeat_seconds": times,
    }
