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
from _common import quiet, real_or_synthetic_pairs
from transformers import TrainerCallback
from trl import RewardConfig, RewardTrainer

from w2s_align import W2SRewardConfig, W2SRewardTrainer
from w2s_align.models import load_tokenizer, resolve_model_path, tokenize_pairs


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
        args = W2SRewardConfig(**args_kwargs, loss_type=name, activation_checkpointing=False)
        trainer = W2SRewardTrainer(
            model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=[timer]
        )
    trainer.train()
    return statistics.median(timer.times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--num_layers", type=int, default=0, help="Keep the first k layers (0: all).")
    parser.add_argument("--batch", type=int, default=8, help="Pairs per step.")
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per contender and repeat.")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet()

    from transformers import AutoModelForSequenceClassification

    path = resolve_model_path(args.model)
    tokenizer = load_tokenizer(path)
    extra = {"num_hidden_layers": args.num_layers} if args.num_layers else {}
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **extra)
    base.config.pad_token_id = tokenizer.pad_token_id
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
    times = {name: [] for name in ("trl", "xent", "logconf")}
    for _ in range(args.repeats):
        for name in times:
            times[name].append(run_one(name, base, tokenizer, data, common, args.warmup))
    result = {name: statistics.median(values) for name, values in times.items()}
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(
        json.dumps(
            {
                "model": args.model,
                "num_layers": args.num_layers or "all",
                "data": data_name,
                "batch_pairs": args.batch,
                "max_length": args.max_length,
                "device": device,
                "seconds_per_step": result,
                "ratio_vs_trl": {k: v / result["trl"] for k, v in result.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
