"""Per-step time of W2SDPOTrainer (xent, logconf) against TRL's DPOTrainer, same policy, reference and data, one run.

    python benchmarks/bench_dpo_step.py                         # offline LM ladder rung, CPU
    python benchmarks/bench_dpo_step.py --model gpt2 --max_length 512 --batch 8    # on a GPU

Both trainers get the same explicit reference model (so neither reloads one), the same pairs in the same order, and
compute the reference log-probs on the fly. The step time is the median over the timed steps; contenders are
interleaved over repeats (order rotated) and the ratio is the median of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics

from _common import device_name, quiet
from bench_trainer_step import StepTimer
from transformers import AutoModelForCausalLM
from transformers.trainer_callback import PrinterCallback
from trl import DPOConfig, DPOTrainer

from w2s_align import W2SDPOConfig, W2SDPOTrainer
from w2s_align.models import load_tokenizer, resolve_model_path
from w2s_align.synthetic import generate_pairs


def run_one(name, base, tokenizer, data, common, warmup):
    model, reference = copy.deepcopy(base), copy.deepcopy(base)
    timer = StepTimer()
    if name == "trl":
        args = DPOConfig(**common, bf16=False, gradient_checkpointing=False)
        trainer = DPOTrainer(
            model=model,
            ref_model=reference,
            args=args,
            processing_class=tokenizer,
            train_dataset=data.remove_columns("soft_label"),
            callbacks=[timer],
        )
    else:
        args = W2SDPOConfig(**common, student_loss=name, activation_checkpointing=False)
        trainer = W2SDPOTrainer(
            model=model,
            ref_model=reference,
            args=args,
            processing_class=tokenizer,
            train_dataset=data,
            callbacks=[timer],
        )
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return statistics.median(timer.times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="w2s-align/tiny-gpt2-m")
    parser.add_argument("--batch", type=int, default=16, help="Pairs per step.")
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    quiet()
    path = resolve_model_path(args.model)
    tokenizer = load_tokenizer(path)
    base = AutoModelForCausalLM.from_pretrained(path)
    base.config.pad_token_id = tokenizer.pad_token_id
    total = args.steps + args.warmup
    data = generate_pairs(total * args.batch, seed=0).select_columns(["prompt", "chosen", "rejected"])
    data = data.add_column("soft_label", [0.7] * data.num_rows)
    common = dict(
        output_dir="runs/bench-dpo",
        per_device_train_batch_size=args.batch,
        max_steps=total,
        learning_rate=1e-5,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1000,
        max_length=args.max_length,
        seed=0,
        beta=0.1,
    )
    names = ["trl", "xent", "logconf"]
    times = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names[repeat % 3 :] + names[: repeat % 3]:
            times[name].append(run_one(name, base, tokenizer, data, common, args.warmup))
    ratios = {name: statistics.median(t / r for t, r in zip(times[name], times["trl"])) for name in names}
    print(
        json.dumps(
            {
                "model": args.model,
                "batch_pairs": args.batch,
                "max_length": args.max_length,
                "device": device_name(),
                "seconds_per_step": {k: statistics.median(v) for k, v in times.items()},
                "ratio_vs_trl": ratios,
                "per_repeat_seconds": times,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
