"""Weak-labeling throughput of WeakLabeler against scoring the same pairs with `Trainer.predict`.

    python benchmarks/bench_labeling.py            # MiniLM 6 layers, 1,000 real pairs, CPU
    python benchmarks/bench_labeling.py --model gpt2 --pairs 4000 --max_length 512   # on a GPU

Both score every pair (two sequences each) with the same model and the same number of sequences per forward pass;
`Trainer.predict` takes the pairs in dataset order, padded per batch, as TRL's RewardTrainer collates them. The
rewards of both are compared, so the speed-up is not bought with different results.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _common import device_name, load_model, quiet, real_or_synthetic_pairs
from trl import RewardConfig, RewardTrainer

from w2s_align.labeling import WeakLabeler
from w2s_align.models import tokenize_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--num_layers", type=int, default=0)
    # A multiple of --batch_pairs: Trainer.predict truncates the last partial batch of a RewardTrainer to the number
    # of pairs left, dropping rejected rows (gather_for_metrics counts rows, and a pair is two rows).
    parser.add_argument("--pairs", type=int, default=1024)
    parser.add_argument("--batch_pairs", type=int, default=32, help="Pairs per forward pass (2x sequences).")
    parser.add_argument("--max_length", type=int, default=512)
    args = parser.parse_args()
    quiet()

    model, tokenizer = load_model(args.model, args.num_layers)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    pairs, data_name = real_or_synthetic_pairs(args.pairs)
    tokenized = tokenize_pairs(pairs, tokenizer, args.max_length)

    predict_data = tokenized.select_columns(["chosen_ids", "rejected_ids"])
    trainer = RewardTrainer(
        model=model,
        args=RewardConfig(
            output_dir="runs/bench-labeling",
            per_device_eval_batch_size=args.batch_pairs,
            report_to=[],
            bf16=torch.cuda.is_available(),
            gradient_checkpointing=False,
            disable_tqdm=True,
            max_length=None,
        ),
        train_dataset=predict_data,  # required by RewardTrainer, never trained on here
        processing_class=tokenizer,
    )
    start = time.perf_counter()
    output = trainer.predict(predict_data)
    predict_seconds = time.perf_counter() - start

    labeler = WeakLabeler(model, tokenizer, "bench", batch_size=2 * args.batch_pairs, max_length=args.max_length)
    start = time.perf_counter()
    labels = labeler.label(tokenized)
    label_seconds = time.perf_counter() - start

    # Trainer.predict returns the per-batch logits (chosen rows first); rebuild the per-pair rewards.
    logits = np.asarray(output.predictions).reshape(-1)
    chosen, rejected = [], []
    for start_index in range(0, len(logits), 2 * args.batch_pairs):
        block = logits[start_index : start_index + 2 * args.batch_pairs]
        half = len(block) // 2
        chosen.extend(block[:half])
        rejected.extend(block[half:])
    diff = max(
        np.abs(np.asarray(chosen) - np.asarray(labels["reward_chosen"])).max(),
        np.abs(np.asarray(rejected) - np.asarray(labels["reward_rejected"])).max(),
    )
    print(
        json.dumps(
            {
                "model": args.model,
                "data": data_name,
                "device": device_name(),
                "batch_pairs": args.batch_pairs,
                "trainer_predict_pairs_per_s": args.pairs / predict_seconds,
                "weak_labeler_pairs_per_s": args.pairs / label_seconds,
                "speedup": predict_seconds / label_seconds,
                "max_abs_reward_difference": float(diff),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
