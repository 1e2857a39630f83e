"""Per-step time of W2SDPOTrainer (xent, logconf) against TRL's DPOTrainer, same policy, reference and data, one run.

    python benchmarks/bench_dpo_step.py                         # offline LM ladder rung, CPU
    python benchmarks/bench_dpo_step.py --model gpt2 --max_length 512 --batch 8    # on a GPU

Both trainers get the same explicit reference model (so neither reloads one), the same pairs in the same order, and
compute the reference log-probs on the fly. The step time is the median over the timed steps; contenders are
interleaved over repeats (order rotated) and the ratio is the median of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import json

from _common import compare_step_times, device_name, dpo_trainer, quiet
from bench_trainer_step import StepTimer
from transformers import AutoModelForCausalLM

from w2s_align.models import load_tokenizer, resolve_model_path
from w2s_align.synthetic import generate_pairs


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
    data = generate_pairs((args.steps + args.warmup) * args.batch, seed=0).select_columns(
        ["prompt", "chosen", "rejected"]
    )
    data = data.add_column("soft_label", [0.7] * data.num_rows)

    def run_one(name: str, common: dict) -> list[float]:
        timer = StepTimer()
        dpo_trainer(name, common, base, data, tokenizer, "runs/bench-dpo", callbacks=[timer]).train()
        return timer.times

    result = compare_step_times(
        run_one, args.steps, args.warmup, args.repeats, args.batch, max_length=args.max_length, beta=0.1
    )
    header = {"model": args.model, "batch_pairs": args.batch, "max_length": args.max_length, "device": device_name()}
    print(json.dumps({**header, **result}, indent=2))


if __name__ == "__main__":
    main()
