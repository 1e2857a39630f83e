"""Train a reward model on your own weak labels with W2SRewardTrainer, outside the w2s_align pipeline.

Your data: a JSONL (or parquet) file of preference pairs with a `soft_label` column, the weak supervisor's probability
that `chosen` is better than `rejected`, e.g.

    {"prompt": "Human: ...\\n\\nAssistant:", "chosen": " ...", "rejected": " ...", "soft_label": 0.83}

Run (with no --data, a small demo file of synthetic pairs with made-up weak labels is written and used):

    python examples/train_on_weak_labels.py --data my_weak_labels.jsonl --model gpt2 --loss logconf
    python examples/train_on_weak_labels.py   # offline demo on all-MiniLM-L6-v2 cut to 2 layers
"""

import argparse
import os
import random

from datasets import load_dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from w2s_align import W2SRewardConfig, W2SRewardTrainer
from w2s_align.models import resolve_model_path
from w2s_align.synthetic import generate_pairs


def demo_file(path: str) -> str:
    """Synthetic pairs with noisy 'weak' labels: right with confidence 0.6-0.95 on 80% of pairs, wrong otherwise."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = random.Random(0)
    pairs = generate_pairs(128, seed=0).select_columns(["prompt", "chosen", "rejected"])
    labels = [rng.uniform(0.6, 0.95) if rng.random() < 0.8 else rng.uniform(0.05, 0.4) for _ in range(len(pairs))]
    pairs.add_column("soft_label", labels).to_json(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="JSONL/parquet file with prompt, chosen, rejected, soft_label.")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2", help="Hub id or local path.")
    parser.add_argument("--num_layers", type=int, default=2, help="Keep the first k layers (0: all).")
    parser.add_argument("--loss", default="logconf", choices=["xent", "logconf", "product"])
    parser.add_argument("--output_dir", default="runs/example-student")
    parser.add_argument("--max_steps", type=int, default=-1)
    args = parser.parse_args()

    data_file = args.data or demo_file("runs/example-weak-labels.jsonl")
    builder = "parquet" if data_file.endswith(".parquet") else "json"
    dataset = load_dataset(builder, data_files=data_file, split="train")

    path = resolve_model_path(args.model)  # a hub id, a local path, or an installed offline copy
    extra = {"num_hidden_layers": args.num_layers} if args.num_layers else {}
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **extra)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id

    config = W2SRewardConfig(
        output_dir=args.output_dir,
        student_loss=args.loss,
        aux_coef=0.5,
        aux_warmup_frac=0.2,
        learning_rate=2e-4,
        num_train_epochs=1,
        max_steps=args.max_steps,
        per_device_train_batch_size=16,
        logging_steps=2,
        report_to=[],
        save_strategy="no",
    )
    trainer = W2SRewardTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    trainer.save_model(args.output_dir)
    last = [log for log in trainer.state.log_history if "label_agreement" in log][-1]
    print(
        f"saved to {args.output_dir}; agreement with the weak labels in the last steps: {last['label_agreement']:.2f}"
    )


if __name__ == "__main__":
    main()
