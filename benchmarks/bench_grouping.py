"""Per-epoch training time with length-grouped batches, against random batches and TRL's own trainer, and the test
accuracy of the same rungs over seeds.

    python benchmarks/bench_grouping.py                      # a reward rung and a DPO rung, 3 seeds
    python benchmarks/bench_grouping.py --task reward --pairs 1000 --seeds 0 1 2

Data: single-turn HH-RLHF harmless pairs from ../shared/data (training: the ground-truth split; accuracy: the test
split). Rungs: the 6-layer MiniLM reward model with frozen embeddings, as the CPU sweeps train it, and the 4-layer
GPT-2-style policy of the offline LM ladder (DPO, beta 0.1, the reference computed on the fly). Contenders, each from
the same weights on the same pairs with the same seed, one epoch each:

- `trl`: TRL's RewardTrainer / DPOTrainer with their default (random) batches, first seed only;
- `random`: the W2S trainer with `train_sampling_strategy="random"` (the batches before grouping);
- `grouped`: the W2S trainer with its default length-grouped batches.

Reported per contender: the epoch's training time (`train_runtime`), the fraction of padding in its batches, and the
test accuracy with a 95% bootstrap interval per seed; the speed-up is random / grouped and trl / grouped.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics

import numpy as np
import torch
from _common import SHARED, device_name, quiet
from transformers import AutoModelForCausalLM
from transformers.trainer_callback import PrinterCallback
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

from w2s_align import W2SDPOConfig, W2SDPOTrainer, W2SRewardConfig, W2SRewardTrainer
from w2s_align.data import load_splits
from w2s_align.models import load_reward_model, load_tokenizer, resolve_model_path, tokenize_pairs
from w2s_align.policy_predictions import predict_policy_pairs
from w2s_align.recipe import DataConfig, RungConfig
from w2s_align.reward_predictions import predict_pairs

CONTENDERS = ("trl", "random", "grouped")


def padding_fraction(trainer) -> float:
    """Pad tokens over all tokens of the epoch's batches, as the trainer's data loader builds them."""
    padded = real = 0
    for batch in trainer.get_train_dataloader():
        padded += batch["input_ids"].numel()
        real += int(batch["attention_mask"].sum())
    return 1 - real / padded


def interval(correct: np.ndarray, seed: int = 0, draws: int = 1000) -> list[float]:
    """95% percentile bootstrap interval of an accuracy over test pairs."""
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, len(correct), size=(draws, len(correct)))].mean(axis=1)
    return [float(q) for q in np.quantile(means, [0.025, 0.975])]


def reward_rung(args, splits):
    model_id = "sentence-transformers/all-MiniLM-L6-v2"
    tokenizer = load_tokenizer(resolve_model_path(model_id))
    torch.manual_seed(0)
    base = load_reward_model(RungConfig(name="minilm-l6", model=model_id))
    base.get_input_embeddings().weight.requires_grad_(False)
    train = tokenize_pairs(splits["gt"], tokenizer, args.max_length).select_columns(["chosen_ids", "rejected_ids"])
    test = tokenize_pairs(splits["test"], tokenizer, args.max_length)

    def make(name: str, common: dict):
        model = copy.deepcopy(base)
        if name == "trl":
            config = RewardConfig(**common, bf16=False, gradient_checkpointing=False)
            return RewardTrainer(model=model, args=config, train_dataset=train, processing_class=tokenizer)
        strategy = "random" if name == "random" else "group_by_length"
        config = W2SRewardConfig(**common, train_sampling_strategy=strategy)
        return W2SRewardTrainer(model=model, args=config, train_dataset=train, processing_class=tokenizer)

    def accuracy(trainer) -> np.ndarray:
        predictions = predict_pairs(trainer.model.eval(), tokenizer, test, 64, args.max_length)
        return np.asarray(predictions["correct"])

    return make, accuracy, f"{model_id}, 6 layers, frozen embeddings, reward model"


def dpo_rung(args, splits):
    path = resolve_model_path("w2s-align/tiny-gpt2-m")
    tokenizer = load_tokenizer(path)
    base = AutoModelForCausalLM.from_pretrained(path)
    base.config.pad_token_id = tokenizer.pad_token_id
    train = splits["gt"].select_columns(["prompt", "chosen", "rejected"])

    def make(name: str, common: dict):
        common = {**common, "beta": 0.1, "max_length": args.max_length, "precompute_ref_log_probs": False}
        model, reference = copy.deepcopy(base), copy.deepcopy(base)
        if name == "trl":
            config = DPOConfig(**common, bf16=False, gradient_checkpointing=False)
            return DPOTrainer(model, reference, args=config, train_dataset=train, processing_class=tokenizer)
        strategy = "random" if name == "random" else "group_by_length"
        config = W2SDPOConfig(**common, train_sampling_strategy=strategy)
        return W2SDPOTrainer(model, reference, args=config, train_dataset=train, processing_class=tokenizer)

    def accuracy(trainer) -> np.ndarray:
        reference = copy.deepcopy(base)
        predictions = predict_policy_pairs(
            trainer.model.eval(), reference, tokenizer, splits["test"], beta=0.1, max_length=args.max_length
        )
        return np.asarray(predictions["correct"])

    return make, accuracy, "w2s-align/tiny-gpt2-m (offline LM ladder, 4 layers), DPO"


def run_task(task: str, args, splits) -> dict:
    make, accuracy, rung = (reward_rung if task == "reward" else dpo_rung)(args, splits)
    rows = {name: {"epoch_seconds": [], "padding": None, "accuracy": [], "interval": []} for name in CONTENDERS}
    for seed in args.seeds:
        for name in CONTENDERS if seed == args.seeds[0] else CONTENDERS[1:]:
            common = dict(
                output_dir=f"runs/bench-grouping/{task}-{name}",
                per_device_train_batch_size=args.batch,
                num_train_epochs=1,
                learning_rate=args.learning_rate[task],
                seed=seed,
                report_to=[],
                save_strategy="no",
                logging_steps=1000,
                disable_tqdm=True,
            )
            trainer = make(name, common)
            trainer.remove_callback(PrinterCallback)  # keep stdout for the JSON result
            if rows[name]["padding"] is None:
                rows[name]["padding"] = round(padding_fraction(trainer), 4)
            rows[name]["epoch_seconds"].append(round(trainer.train().metrics["train_runtime"], 1))
            correct = accuracy(trainer)
            rows[name]["accuracy"].append(round(float(correct.mean()), 4))
            rows[name]["interval"].append([round(v, 4) for v in interval(correct, seed)])
            del trainer
    seconds = {name: statistics.fmean(row["epoch_seconds"]) for name, row in rows.items()}
    first = {name: row["epoch_seconds"][0] for name, row in rows.items()}  # the same seed for all three
    return {
        "rung": rung,
        "contenders": rows,
        "speedup_first_seed": {
            "random/grouped": round(first["random"] / first["grouped"], 3),
            "trl/grouped": round(first["trl"] / first["grouped"], 3),
        },
        "speedup_mean_over_seeds_random/grouped": round(seconds["random"] / seconds["grouped"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["reward", "dpo", "both"], default="both")
    parser.add_argument("--pairs", type=int, default=1000, help="Training pairs (the test split has as many).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=16, help="Pairs per step.")
    parser.add_argument("--max_length", type=int, default=128)
    args = parser.parse_args()
    args.learning_rate = {"reward": 1e-4, "dpo": 1e-4}
    quiet()
    if not SHARED.is_dir():
        raise SystemExit(f"this benchmark needs the real pairs under {SHARED}")
    config = DataConfig(
        source="hh_single_turn", path=str(SHARED), gt_size=args.pairs, w2s_size=1, test_size=args.pairs, seed=0
    )
    splits = load_splits(config)
    tasks = ["reward", "dpo"] if args.task == "both" else [args.task]
    header = {
        "data": f"hh-single-turn harmless, {args.pairs} training / {args.pairs} test pairs",
        "device": device_name(),
        "batch_pairs": args.batch,
        "max_length": args.max_length,
        "seeds": args.seeds,
    }
    print(json.dumps({**header, **{task: run_task(task, args, splits) for task in tasks}}, indent=2))


if __name__ == "__main__":
    main()
