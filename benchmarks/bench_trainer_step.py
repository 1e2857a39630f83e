"""Per-step time of W2SRewardTrainer (xent, logconf) against TRL's RewardTrainer, same model and data, one run.

    python benchmarks/bench_trainer_step.py                       # MiniLM, 6 layers, real pairs, CPU
    python benchmarks/bench_trainer_step.py --model gpt2 --max_length 512 --batch 16   # on a GPU

Every contender starts from the same weights and trains on the same pre-tokenized pairs in the same order; the step
time is the median over the timed steps (after warmup steps), and contenders are interleaved over repeats so that
drift of the machine hits them all alike.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from _common import device_name, load_model, quiet, real_or_synthetic_pairs
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import RewardConfig, RewardTrainer

from w2s_align import W2SRewardConfig, W2SRewardTrainer
from w2s_align.models import tokenize_pairs


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)


def run_one(name, base_model, tokenizer, data, args_kwargs, warmup):
    model = copy.deepcopy(base_model)
    timer = StepTimer()
    if name == "trl":
        args = RewardConfig(
            **args_kwargs,
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
            gradient_checkpointing=False,
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=data.remove_columns("soft_label"),
            processing_class=tokenizer,
            callbacks=[timer],
        )
    else:
        args = W2SRewardConfig(**args_kwargs, student_loss=name, activation_checkpointing=False)
        trainer = W2SRewardTrainer(
            model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=[timer]
        )
    trainer.remove_callback(PrinterCallback)  # keep stdout for the JSON result
    trainer.train()
    return statistics.median(timer.times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--num_layers", type=int, default=0, help="Keep the first k layers (0: all).")
    parser.add_argument("--batch", type=int, default=8, help="Pairs per step.")
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12, help="Timed steps per contender and repeat.")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    quiet()

    base, tokenizer = load_model(args.model, args.num_layers)
    total = args.steps + args.warmup
    pairs, data_name = real_or_synthetic_pairs(total * args.batch)
    data = tokenize_pairs(pairs, tokenizer, args.max_length).select_columns(["chosen_ids", "rejected_ids"])
    data = data.add_column("soft_label", [0.7] * data.num_rows)
    common = dict(
        output_dir="runs/bench-step",
        per_device_train_batch_size=args.batch,
        max_steps=total,
        learning_rate=1e-5,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1000,
        max_length=None,
        seed=0,
    )
    names = ["trl", "xent", "logconf"]
    times = {name: [] for name in names}
    for repeat in range(args.repeats):
        # Rotate the order so that no contender always runs first (or last) in a repeat.
        for name in names[repeat % 3 :] + names[: repeat % 3]:
            times[name].append(run_one(name, base, tokenizer, data, common, args.warmup))
    result = {name: statistics.median(values) for name, values in times.items()}
    ratios = {name: statistics.median(t / ref for t, ref in zip(times[name], times["trl"])) for name in names}
    print(
        json.dumps(
            {
                "model": args.model,
                "num_layers": args.num_layers or "all",
                "data": data_name,
                "batch_pairs": args.batch,
                "max_length": args.max_length,
                "device": device_name(),
                "seconds_per_step": result,
                "ratio_vs_trl": ratios,
                "per_repeat_seconds": times,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
