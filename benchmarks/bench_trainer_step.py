"""Per-step time of W2SRewardTrainer (xent, logconf) against TRL's RewardTrainer, same model and data, one run.

    python benchmarks/bench_trainer_step.py                       # MiniLM, 6 layers, real pairs, CPU
    python benchmarks/bench_trainer_step.py --model gpt2 --max_length 512 --batch 16   # on a GPU

Every contender starts from the same weights and trains on the same pre-tokenized pairs in the same order; the step
time is the median over the timed steps (after warmup steps), and contenders are interleaved over repeats so that
drift of the machine hits them all alike.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import compare_step_times, device_name, load_model, quiet, real_or_synthetic_pairs, reward_trainer
from transformers import TrainerCallback

from w2s_align.models import tokenize_pairs


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step."""

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
    pairs, data_name = real_or_synthetic_pairs((args.steps + args.warmup) * args.batch)
    data = tokenize_pairs(pairs, tokenizer, args.max_length).select_columns(["chosen_ids", "rejected_ids"])
    data = data.add_column("soft_label", [0.7] * data.num_rows)

    def run_one(name: str, common: dict) -> list[float]:
        timer = StepTimer()
        reward_trainer(name, common, base, data, tokenizer, "runs/bench-step", callbacks=[timer]).train()
        return timer.times

    result = compare_step_times(run_one, args.steps, args.warmup, args.repeats, args.batch, max_length=None)
    header = {
        "model": args.model,
        "num_layers": args.num_layers or "all",
        "data": data_name,
        "batch_pairs": args.batch,
        "max_length": args.max_length,
        "device": device_name(),
    }
    print(json.dumps({**header, **result}, indent=2))


if __name__ == "__main__":
    main()
