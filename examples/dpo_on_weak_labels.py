"""Train a DPO or SimPO policy on your own weak labels with W2SDPOTrainer, outside the w2s_align pipeline.

Your data: a JSONL (or parquet) file of preference pairs with a `soft_label` column, the weak supervisor's probability
that `chosen` is better than `rejected` (as for train_on_weak_labels.py). Arguments are TRL's (`TrlParser` over
`ScriptArguments`, `W2SDPOConfig`, `ModelConfig` and `DatasetMixtureConfig`), as for `w2s-align dpo`; with no
--dataset_name, a small demo file of synthetic pairs with made-up weak labels is written and used:

    python examples/dpo_on_weak_labels.py --config examples/weak_labels_dpo.yaml   # offline: a tiny GPT-2
    python examples/dpo_on_weak_labels.py --config examples/weak_labels_dpo.yaml \\
        --dataset_name my_weak_labels.jsonl --model_name_or_path HuggingFaceTB/SmolLM2-135M --loss_type simpo --beta 2
"""

from train_on_weak_labels import demo_file

from w2s_align.distributed import barrier, on_main
from w2s_align.trainer_cli import make_parser, train


def main() -> None:
    script_args, training_args, model_args, mixture = make_parser("dpo").parse_args_and_config()
    if not script_args.dataset_name and not mixture.datasets:
        # Under `accelerate launch` one process writes the demo file, and the others wait until it is whole.
        on_main(lambda: demo_file("runs/example-weak-labels.jsonl"))
        barrier()
        script_args.dataset_name = "runs/example-weak-labels.jsonl"
    trainer = train("dpo", script_args, training_args, model_args, mixture)
    last = [log for log in trainer.state.log_history if "label_agreement" in log][-1]
    if trainer.accelerator.is_main_process:
        # `label_agreement`: how often the policy's implicit reward sides with the weak label's preferred response
        print(f"agreement with the weak labels in the last steps: {last['label_agreement']:.2f}")


if __name__ == "__main__":
    main()
