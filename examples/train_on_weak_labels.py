"""Train a reward model on your own weak labels with W2SRewardTrainer, outside the w2s_align pipeline.

Your data: a JSONL (or parquet) file of preference pairs with a `soft_label` column, the weak supervisor's probability
that `chosen` is better than `rejected`, e.g.

    {"prompt": "Human: ...\\n\\nAssistant:", "chosen": " ...", "rejected": " ...", "soft_label": 0.83}

Arguments are TRL's (`TrlParser` over `ScriptArguments`, `W2SRewardConfig`, `ModelConfig` and
`DatasetMixtureConfig`), as for `w2s-align reward`; with no --dataset_name (or --datasets), a small demo file of
synthetic pairs with made-up weak labels is written and used:

    python examples/train_on_weak_labels.py --config examples/weak_labels_reward.yaml   # offline demo, MiniLM 2 layers
    python examples/train_on_weak_labels.py --config examples/weak_labels_reward.yaml \\
        --dataset_name my_weak_labels.jsonl --model_name_or_path gpt2 --model_init_kwargs '{}' --use_peft
"""

import os
import random

from w2s_align.distributed import barrier, on_main
from w2s_align.synthetic import generate_pairs
from w2s_align.trainer_cli import make_parser, train


def demo_file(path: str) -> str:
    """Synthetic pairs with noisy 'weak' labels: right with confidence 0.6-0.95 on 80% of pairs, wrong otherwise."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = random.Random(0)
    pairs = generate_pairs(128, seed=0).select_columns(["prompt", "chosen", "rejected"])
    labels = [rng.uniform(0.6, 0.95) if rng.random() < 0.8 else rng.uniform(0.05, 0.4) for _ in range(len(pairs))]
    pairs.add_column("soft_label", labels).to_json(path)
    return path


def main() -> None:
    script_args, training_args, model_args, mixture = make_parser("reward").parse_args_and_config()
    if not script_args.dataset_name and not mixture.datasets:
        # Under `accelerate launch` one process writes the demo file, and the others wait until it is whole.
        on_main(lambda: demo_file("runs/example-weak-labels.jsonl"))
        barrier()
        script_args.dataset_name = "runs/example-weak-labels.jsonl"
    trainer = train("reward", script_args, training_args, model_args, mixture)
    last = [log for log in trainer.state.log_history if "label_agreement" in log][-1]
    if trainer.accelerator.is_main_process:
        print(f"agreement with the weak labels in the last steps: {last['label_agreement']:.2f}")


if __name__ == "__main__":
    main()
