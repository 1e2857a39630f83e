"""Shared setup of the benchmarks: the model and the pairs every contender gets."""

from __future__ import annotations

import copy
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


def training_kwargs(batch: int, max_steps: int, **extra) -> dict:
    """The config arguments every contender of a step-time benchmark shares: `batch` pairs a step, `max_steps` steps,
    no saving, logging or progress bar, seed 0; `extra` (e.g. `max_length`, `beta`) is added as is."""
    return dict(
        per_device_train_batch_size=batch,
        max_steps=max_steps,
        learning_rate=1e-5,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1000,
        seed=0,
        **extra,
    )


def contender_trainer(
    name: str,
    trl: tuple,
    w2s: tuple,
    common: dict,
    data,
    output_dir: str,
    callbacks,
    bf16: bool,
    extra,
    **trainer_kwargs,
):
    """TRL's trainer (`name="trl"`) or the W2S trainer with student loss `name`; `trl` and `w2s` are each a
    (config class, trainer class) pair; `trainer_kwargs` (`model`, `ref_model`, `processing_class`) go to either one.

    `common` and `extra` go into both configs. No activation checkpointing, and the W2S trainer draws TRL's random
    batches (this times the loss and the step, not the batching); TRL gets `data` without its `soft_label` column.
    Both get the same `bf16` (default `False`: fp32, like for like; on a CPU the W2S config would derive `False`
    anyway). The printer callback is removed (stdout stays for the JSON result).
    """
    from transformers.trainer_callback import PrinterCallback

    if name == "trl":
        config_class, trainer_class = trl
        config = config_class(**common, **extra, output_dir=output_dir, bf16=bool(bf16), gradient_checkpointing=False)
        data = data.remove_columns("soft_label")
    else:
        config_class, trainer_class = w2s
        config = config_class(
            **common,
            **extra,
            output_dir=output_dir,
            bf16=bool(bf16),
            student_loss=name,
            activation_checkpointing=False,
            train_sampling_strategy="random",
        )
    trainer = trainer_class(args=config, train_dataset=data, callbacks=list(callbacks), **trainer_kwargs)
    trainer.remove_callback(PrinterCallback)
    return trainer


def reward_trainer(name: str, common: dict, base, data, tokenizer, output_dir: str, callbacks=(), bf16=False, **extra):
    """TRL's RewardTrainer or W2SRewardTrainer (see `contender_trainer`) on a copy of `base`; `data` holds
    `chosen_ids`, `rejected_ids` and `soft_label`."""
    from trl import RewardConfig, RewardTrainer

    from w2s_align import W2SRewardConfig, W2SRewardTrainer

    classes = (RewardConfig, RewardTrainer), (W2SRewardConfig, W2SRewardTrainer)
    return contender_trainer(
        name, *classes, common, data, output_dir, callbacks, bf16, extra,
        model=copy.deepcopy(base), processing_class=tokenizer,
    )  # fmt: skip


def dpo_trainer(name: str, common: dict, base, data, tokenizer, output_dir: str, callbacks=(), bf16=False, **extra):
    """TRL's DPOTrainer or W2SDPOTrainer (see `contender_trainer`): policy and explicit reference model are copies of
    `base` (neither trainer loads one), reference log-probs on the fly; `data` holds `prompt`, `chosen`, `rejected`
    and `soft_label`."""
    from trl import DPOConfig, DPOTrainer

    from w2s_align import W2SDPOConfig, W2SDPOTrainer

    classes = (DPOConfig, DPOTrainer), (W2SDPOConfig, W2SDPOTrainer)
    return contender_trainer(
        name, *classes, common, data, output_dir, callbacks, bf16, extra,
        model=copy.deepcopy(base), ref_model=copy.deepcopy(base), processing_class=tokenizer,
    )  # fmt: skip


def compare_step_times(run_one, steps: int, warmup: int, repeats: int, batch: int, **common) -> dict:
    """Median step time of TRL and the W2S trainer (xent, logconf), interleaved over repeats with the order rotated.

    `run_one(name, common_kwargs)` trains one contender and returns its per-step times. The ratio to TRL is the median
    of the per-repeat ratios.
    """
    import statistics

    names = ["trl", "xent", "logconf"]
    kwargs = training_kwargs(batch, steps + warmup, **common)
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
