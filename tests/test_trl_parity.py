"""The W2S trainers as drop-ins for TRL's (issue 37): TRL's signatures, TRL's configs, and TRL's numbers.

For every field of `trl.DPOConfig` and `trl.RewardConfig` whose non-default value changes TRL's training, TRL's trainer
and ours train from the same weights on the same rows with the same config (ours converted from TRL's object, the
weak-to-strong fields at their defaults), and each optimizer step's loss, every gradient (as the optimizer receives
it, after clipping), every metric TRL logs and the weights after training must agree to 1e-6. Every field is
classified in `FIELDS`: a field that TRL adds fails `test_every_trl_config_field_is_classified` until it is.

The steps (two per comparison: 8 pairs, 4 per batch) run on tiny local models (the GPT-2 of `conftest.py`, as a
reward model and as a causal LM): a comparison takes 0.9 s on 2 idle cores, 2-6 s on busy ones. The classification,
the signatures and `FAST` run in the fast tier (7 s idle, 30 s busy); the 107 other comparisons are marked slow (the
file: 110 s idle, 7-15 min under a load of 5-6; 2026-12-07). The values that need a CUDA GPU are skipped on a CPU.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import trl
from transformers import AutoModelForCausalLM, TrainerCallback

from w2s_align import W2SDPOConfig, W2SDPOTrainer, W2SRewardConfig, W2SRewardTrainer
from w2s_align.synthetic import generate_pairs

TRAINERS = {
    "dpo": (trl.DPOConfig, trl.DPOTrainer, W2SDPOTrainer),
    "reward": (trl.RewardConfig, trl.RewardTrainer, W2SRewardTrainer),
}


@dataclass(frozen=True)
class Compared:
    """Changes TRL's training: each of `values` (settings added to the base config, with any companion they need) is
    compared; `configs` limits them to some of the configs; `needs` names what a value runs on (skipped elsewhere)."""

    values: tuple[dict[str, Any], ...]
    configs: tuple[str, ...] = ("dpo", "reward")
    needs: str | None = None


@dataclass(frozen=True)
class Refused:
    """Refused by the W2S class, with the reason."""

    reason: str


@dataclass(frozen=True)
class Different:
    """A deliberate difference from TRL (the table of differences in the docs), with the reason."""

    reason: str


@dataclass(frozen=True)
class Neutral:
    """Changes no loss, gradient or weight of TRL's training (logging, saving, the hub, evaluation, ...): why."""

    reason: str


Kind = Compared | Refused | Different | Neutral


def kinds(entry: Kind | tuple[Kind, ...]) -> tuple[Kind, ...]:
    """A field's classifications: one, or several for values that behave differently (compared, and a difference)."""
    return entry if isinstance(entry, tuple) else (entry,)


def compared(*values: dict[str, Any], configs: tuple[str, ...] = ("dpo", "reward"), needs: str | None = None):
    return Compared(values, configs, needs)


LOGGING = Neutral("logging: what is logged and where, not what is trained")
SAVING = Neutral("checkpoints: what is saved, when and where")
HUB = Neutral("the hub: where and when a model is pushed")
EVALUATION = Neutral("evaluation: how and when it runs; the training steps do not read it (neutral_evaluation)")
RESUMING = Neutral("resuming from a checkpoint")
DISTRIBUTED = Neutral(
    "how a step is shared between processes or devices: the same loss up to the order of summation "
    "(tests/test_distributed.py, tests/test_last_batch.py)"
)
LOADER = Neutral("how the data loader's workers fetch batches, not which")
UNREAD = Neutral("not read by Trainer or TRL's trainers (scripts read it)")
GPU = "cuda"

# Every field of `trl.DPOConfig` and `trl.RewardConfig`, classified. A `Compared` field's values are tried on top of
# the base config (`BASE`), which differs from TRL's defaults where a step on a CPU needs it, and to make the weights
# move visibly (`learning_rate`).
FIELDS: dict[str, Kind | tuple[Kind, ...]] = {
    # transformers' TrainingArguments: the optimizer and the schedule
    "output_dir": SAVING,
    "per_device_train_batch_size": compared({"per_device_train_batch_size": 3}),
    "num_train_epochs": compared({"num_train_epochs": 2}),
    "max_steps": compared({"max_steps": 3}),
    "learning_rate": compared({"learning_rate": 1e-3}),
    "lr_scheduler_type": compared({"lr_scheduler_type": "cosine", "warmup_steps": 1}),
    "lr_scheduler_kwargs": compared(
        {"lr_scheduler_type": "cosine_with_restarts", "lr_scheduler_kwargs": {"num_cycles": 2}}
    ),
    "warmup_steps": compared({"warmup_steps": 1}),
    "optim": compared({"optim": "sgd"}),
    "optim_args": compared({"optim": "adamw_torch", "optim_args": "foreach=False"}),
    "weight_decay": compared({"weight_decay": 0.1}),
    "adam_beta1": compared({"adam_beta1": 0.5}),
    "adam_beta2": compared({"adam_beta2": 0.9}),
    "adam_epsilon": compared({"adam_epsilon": 1e-3}),
    "optim_target_modules": Neutral(
        "read only by the GaLore, APOLLO and LOMO optimizers, which need a GPU and packages"
    ),
    "gradient_accumulation_steps": compared({"gradient_accumulation_steps": 2}),
    "average_tokens_across_devices": compared({"average_tokens_across_devices": False}),
    "max_grad_norm": compared({"max_grad_norm": 1e-3}),
    "label_smoothing_factor": compared({"label_smoothing_factor": 0.1}),
    # precision and memory
    "bf16": compared({"bf16": True}),
    "fp16": compared({"fp16": True, "bf16": False, "use_cpu": False}, needs=GPU),
    "bf16_full_eval": EVALUATION,
    "fp16_full_eval": EVALUATION,
    "tf32": compared({"tf32": True}, needs=GPU),
    "activation_checkpointing": compared({"activation_checkpointing": False, "gradient_checkpointing": False}),
    "activation_checkpointing_kwargs": compared({"activation_checkpointing_kwargs": {"use_reentrant": True}}),
    "gradient_checkpointing": compared({"gradient_checkpointing": False}),
    "gradient_checkpointing_kwargs": compared({"gradient_checkpointing_kwargs": {"use_reentrant": True}}),
    # Compiled on both sides, by dynamo with its eager backend: the trainers see the same compiled wrappers as with
    # inductor (a compiled DPO reference once failed here: it has no truth value), without inductor's minute of code
    # generation on a CPU; benchmarks/gpu_check.py's `options` section compiles with inductor against TRL.
    "torch_compile": compared({"torch_compile": True, "torch_compile_backend": "eager"}),
    "torch_compile_backend": Neutral("torch_compile's backend"),
    "torch_compile_mode": Neutral("torch_compile's mode"),
    "use_liger_kernel": Neutral("deprecated in TRL's DPO trainer; Liger's Triton kernels fuse the same computation"),
    "liger_kernel_config": Neutral("use_liger_kernel's settings"),
    "use_cache": compared({"use_cache": True}),
    "neftune_noise_alpha": compared({"neftune_noise_alpha": 5.0}),
    "torch_empty_cache_steps": Neutral("frees the accelerator's cache between steps"),
    "auto_find_batch_size": Neutral("halves the batch only after an out-of-memory error"),
    "activation_offloading": compared({"activation_offloading": True}, needs=GPU),
    # logging, tracking, saving, the hub
    "logging_strategy": LOGGING,
    "logging_steps": LOGGING,
    "logging_first_step": LOGGING,
    "log_on_each_node": LOGGING,
    "logging_nan_inf_filter": LOGGING,
    "include_num_input_tokens_seen": compared({"include_num_input_tokens_seen": "all"}),
    "log_level": LOGGING,
    "log_level_replica": LOGGING,
    "disable_tqdm": LOGGING,
    "report_to": LOGGING,
    "run_name": LOGGING,
    "project": LOGGING,
    "trackio_space_id": LOGGING,
    "trackio_bucket_id": LOGGING,
    "trackio_static_space_id": LOGGING,
    "skip_memory_metrics": LOGGING,
    "debug": Neutral("prints underflow/overflow diagnostics, or checks TPU metrics"),
    "save_only_model": SAVING,
    "save_strategy": SAVING,
    "save_steps": SAVING,
    "save_on_each_node": SAVING,
    "save_total_limit": SAVING,
    "enable_jit_checkpoint": SAVING,
    "load_best_model_at_end": SAVING,
    "metric_for_best_model": SAVING,
    "greater_is_better": SAVING,
    "push_to_hub": HUB,
    "hub_token": HUB,
    "hub_private_repo": HUB,
    "hub_model_id": HUB,
    "hub_strategy": HUB,
    "hub_always_push": HUB,
    "hub_revision": HUB,
    # evaluation
    "eval_strategy": EVALUATION,
    "eval_steps": EVALUATION,
    "eval_delay": EVALUATION,
    "per_device_eval_batch_size": EVALUATION,
    "prediction_loss_only": EVALUATION,
    "eval_on_start": EVALUATION,
    "eval_do_concat_batches": EVALUATION,
    "eval_use_gather_object": EVALUATION,
    "eval_accumulation_steps": EVALUATION,
    "include_for_metrics": EVALUATION,
    "batch_eval_metrics": EVALUATION,
    "label_names": EVALUATION,
    # resuming, seeds
    "ignore_data_skip": RESUMING,
    "restore_callback_states_from_checkpoint": RESUMING,
    "resume_from_checkpoint": UNREAD,
    "full_determinism": compared({"full_determinism": True}),
    "seed": compared({"seed": 7}),
    "data_seed": compared({"data_seed": 7}),
    # devices, processes, data loading
    "use_cpu": Neutral("the device (the base config runs on the CPU)"),
    "accelerator_config": compared({"accelerator_config": {"split_batches": True}}),
    "parallelism_config": DISTRIBUTED,
    "dataloader_drop_last": compared({"dataloader_drop_last": True, "per_device_train_batch_size": 3}),
    "dataloader_num_workers": LOADER,
    "dataloader_pin_memory": LOADER,
    "dataloader_persistent_workers": LOADER,
    "dataloader_prefetch_factor": LOADER,
    "dataloader_multiprocessing_context": LOADER,
    "dataloader_in_order": LOADER,
    "remove_unused_columns": compared({"remove_unused_columns": False}),
    "train_sampling_strategy": compared({"train_sampling_strategy": "sequential"}),
    "length_column_name": Neutral("read only by transformers' group_by_length sampling (see train_sampling_strategy)"),
    "ddp_find_unused_parameters": DISTRIBUTED,
    "ddp_bucket_cap_mb": DISTRIBUTED,
    "ddp_broadcast_buffers": DISTRIBUTED,
    "ddp_static_graph": DISTRIBUTED,
    "ddp_backend": DISTRIBUTED,
    "ddp_timeout": DISTRIBUTED,
    "fsdp": DISTRIBUTED,
    "fsdp_config": DISTRIBUTED,
    "deepspeed": DISTRIBUTED,
    "local_rank": DISTRIBUTED,
    "do_train": UNREAD,
    "do_eval": UNREAD,
    "do_predict": UNREAD,
    # TRL's fields shared by both configs
    "model_init_kwargs": (
        compared(
            {"model_init_kwargs": {"attn_implementation": "eager"}}, {"model_init_kwargs": {"dtype": "bfloat16"}}
        ),
        Different(
            "with `float32_loss=True` (W2S-only, opt-in; the pipeline sets it) and weights in bf16 or fp16, the loss "
            "is computed in float32 from the model's outputs (TRL's in the weights' dtype: the reward loss 0.6758 "
            "against 0.6742 here), for soft-label cross-entropies at full precision"
        ),
    ),
    "trust_remote_code": Neutral("a local model without remote code: nothing to trust"),
    "disable_dropout": compared({"disable_dropout": False}),
    "dataset_num_proc": Neutral("processes that tokenize the dataset, not how"),
    "max_length": compared({"max_length": 72}),  # DPO truncates 3 of the 8 pairs, the reward trainer drops them
    "pad_to_multiple_of": compared({"pad_to_multiple_of": 16}),
    "pad_token": compared({"pad_token": "<|endoftext|>"}),
    # DPOConfig
    "router_aux_loss_coef": Neutral(
        "only a mixture-of-experts policy has a router loss (tests/test_dpo_trainer.py compares it with TRL's)"
    ),
    "truncation_mode": compared({"truncation_mode": "keep_end", "max_length": 40}, configs=("dpo",)),
    "padding_free": compared({"padding_free": True}, configs=("dpo",)),
    "precompute_ref_log_probs": compared({"precompute_ref_log_probs": True}, configs=("dpo",)),
    "precompute_ref_batch_size": compared(
        {"precompute_ref_log_probs": True, "precompute_ref_batch_size": 3}, configs=("dpo",)
    ),
    "loss_type": compared(
        *(
            {"loss_type": [loss]}
            for loss in (
                "hinge",
                "ipo",
                "nca_pair",
                "bco_pair",
                "sppo_hard",
                "aot",
                "aot_unpaired",
                "apo_zero",
                "apo_down",
                "discopop",
                "sft",
                "sigmoid_norm",
            )
        ),
        {"loss_type": ["exo_pair"], "label_smoothing": 1e-3},
        {"loss_type": ["robust"], "label_smoothing": 0.1},
        configs=("dpo",),
    ),
    "loss_weights": compared(
        {"loss_weights": [2.0]},
        {"loss_type": ["sigmoid", "bco_pair", "sft"], "loss_weights": [0.8, 0.2, 1.0]},  # MPO
        {"loss_type": ["sigmoid", "hinge", "ipo"], "loss_weights": [1.0, 0.5, 0.2]},
        configs=("dpo",),
    ),
    "ld_alpha": compared({"ld_alpha": 0.5}, configs=("dpo",)),
    "f_divergence_type": compared(
        {"f_divergence_type": "forward_kl"}, {"f_divergence_type": "js_divergence"}, configs=("dpo",)
    ),
    "f_alpha_divergence_coef": compared(
        {"f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.3}, configs=("dpo",)
    ),
    "label_smoothing": compared(
        {"label_smoothing": 0.1}, {"loss_type": ["aot"], "label_smoothing": 0.1}, configs=("dpo",)
    ),
    "beta": compared({"beta": 0.5}, configs=("dpo",)),
    "use_weighting": (
        compared({"use_weighting": True}, {"use_weighting": True, "loss_type": ["ipo"]}, configs=("dpo",)),
        Different(
            "with loss_type hinge or sft, TRL 1.16 multiplies the loss by WPO's weights in place and fails (relu's "
            "backward; sft's expanded batch mean); the W2S trainer weighs them as TRL's expression means "
            "(tests/test_dpo_trainer.py)"
        ),
    ),
    "discopop_tau": compared({"loss_type": ["discopop"], "discopop_tau": 0.5}, configs=("dpo",)),
    "sync_ref_model": compared(
        {"sync_ref_model": True, "ref_model_sync_steps": 1, "ref_model_mixup_alpha": 0.5}, configs=("dpo",)
    ),
    "ref_model_mixup_alpha": compared(
        {"sync_ref_model": True, "ref_model_sync_steps": 1, "ref_model_mixup_alpha": 0.9}, configs=("dpo",)
    ),
    "ref_model_sync_steps": compared(
        {"sync_ref_model": True, "ref_model_sync_steps": 2, "max_steps": 3}, configs=("dpo",)
    ),
    # RewardConfig
    "chat_template_path": Neutral(
        "read by TRL's own tokenization of conversational data, which the W2S class inherits unchanged"
    ),
    "eos_token": compared({"eos_token": "a"}, configs=("reward",)),
    "center_rewards_coefficient": compared({"center_rewards_coefficient": 0.1}, configs=("reward",)),
}

# The base of every comparison: TRL's defaults but for a CPU step on a tiny model, logs of every step, and weights
# that move visibly.
BASE: dict[str, Any] = {
    "report_to": "none",
    "save_strategy": "no",
    "disable_tqdm": True,
    "logging_steps": 1,
    "num_train_epochs": 1,
    "per_device_train_batch_size": 4,
    "learning_rate": 1e-2,
    "bf16": False,
    "use_cpu": True,
    "adam_epsilon": 1e-3,
}
ROWS = 8

# The fast tier: both bases, the loss-shaping fields that differed before issue 37, a reward field, bf16 weights.
FAST = {
    "reward-base",
    "dpo-base",
    "reward-center_rewards_coefficient=0.1",
    "dpo-loss_weights=[2.0]",
    "dpo-loss_type=['sigmoid', 'bco_pair', 'sft']-loss_weights=[0.8, 0.2, 1.0]",
    "dpo-loss_type=['aot']",
    "reward-model_init_kwargs={'dtype': 'bfloat16'}",
}


def cases():
    yield pytest.param("reward", "base", {}, id="reward-base")
    yield pytest.param("dpo", "base", {}, id="dpo-base")
    for name, entry in FIELDS.items():
        for kind in kinds(entry):
            if not isinstance(kind, Compared):
                continue
            for config in kind.configs:
                for value in kind.values:
                    case = f"{config}-" + "-".join(f"{key}={setting}" for key, setting in value.items())
                    marks = [] if case in FAST else [pytest.mark.slow]
                    if kind.needs == GPU:
                        marks.append(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"))
                    yield pytest.param(config, name, value, id=case, marks=marks)


def test_every_trl_config_field_is_classified():
    names = {f.name for config, _, _ in TRAINERS.values() for f in dataclasses.fields(config)}
    unclassified = sorted(names - set(FIELDS))
    assert not unclassified, f"fields of TRL's configs not classified in FIELDS: {unclassified}"
    stale = sorted(set(FIELDS) - names)
    assert not stale, f"FIELDS classifies fields TRL's configs no longer have: {stale}"
    for name, entry in FIELDS.items():
        for kind in kinds(entry):
            if isinstance(kind, Compared):  # each value sets the field it is listed under, on a config that has it
                assert all(name in value for value in kind.values), name
                for config in kind.configs:
                    assert name in {f.name for f in dataclasses.fields(TRAINERS[config][0])}, (config, name)
            else:
                assert kind.reason, name


class Recorder(TrainerCallback):
    """Each optimizer step's gradients, as the optimizer receives them (after clipping)."""

    def __init__(self):
        self.gradients: list[dict[str, torch.Tensor]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
        self.gradients.append(grads)


@dataclass
class Run:
    """What a trainer did in training: each step's logs (TRL's metrics with them), gradients, the final weights."""

    logs: list[dict[str, float]]
    gradients: list[dict[str, torch.Tensor]]
    weights: dict[str, torch.Tensor] = field(repr=False)


@pytest.fixture(scope="module")
def models(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """The reward model of `conftest.py`; the same GPT-2 as a causal LM (the policy) and, its weights moved, the DPO
    reference, so that the policy's log-ratios are not all 0 at the first step."""
    policy = tmp_path_factory.mktemp("tiny-policy")
    reference = tmp_path_factory.mktemp("tiny-reference")
    for directory, seed in ((policy, None), (reference, 1)):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        if seed is not None:
            generator = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.05 * torch.randn(p.shape, generator=generator))
        model.save_pretrained(directory)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (directory / name).write_bytes((tiny_model_dir / name).read_bytes())
    return {"reward": tiny_model_dir, "dpo": policy, "reference": reference}


def train(kind: str, trainer_class, args, models: dict[str, Path]) -> Run:
    rows = generate_pairs(ROWS, seed=3).select_columns(["prompt", "chosen", "rejected"])
    recorder = Recorder()
    extra = {}
    if kind == "dpo":
        extra["ref_model"] = AutoModelForCausalLM.from_pretrained(models["reference"])
    trainer = trainer_class(str(models[kind]), args=args, train_dataset=rows, callbacks=[recorder], **extra)
    trainer.train()
    logs = [log for log in trainer.state.log_history if "train_runtime" not in log]
    weights = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    return Run(logs, recorder.gradients, weights)


# The first step agrees to 1e-6 (where ours sums in another order: a loss mixing both readings of a pair by its label,
# metrics gathered over the split); each update carries that rounding into the next steps' weights: 1e-5.
FIRST_STEP, LATER = 1e-6, 1e-5


def assert_same(ours: Run, theirs: Run) -> None:
    assert len(ours.logs) == len(theirs.logs) and len(ours.gradients) == len(theirs.gradients) > 0
    for step, (mine, trls) in enumerate(zip(ours.logs, theirs.logs)):
        tolerance = FIRST_STEP if step == 0 else LATER
        missing = sorted(set(trls) - set(mine))
        assert not missing, f"step {step + 1}: TRL logs {missing}, ours does not"
        for key, value in trls.items():  # ours logs more (the weak-to-strong metrics): TRL's keys are compared
            expected = pytest.approx(value, rel=tolerance, abs=tolerance, nan_ok=True)
            assert mine[key] == expected, f"step {step + 1}: {key}"
    for step, (mine, trls) in enumerate(zip(ours.gradients, theirs.gradients)):
        assert mine.keys() == trls.keys()
        for name in trls:
            close(mine[name], trls[name], FIRST_STEP if step == 0 else LATER, f"step {step + 1}'s gradient of {name}")
    for name in theirs.weights:
        close(ours.weights[name], theirs.weights[name], LATER, f"{name} after training")


def close(ours: torch.Tensor, theirs: torch.Tensor, tolerance: float, what: str) -> None:
    torch.testing.assert_close(ours, theirs, rtol=tolerance, atol=tolerance, msg=lambda message: f"{what}: {message}")


@pytest.mark.parametrize(("kind", "name", "value"), list(cases()))
def test_a_trl_config_trains_ours_as_trls_trainer(kind, name, value, models, tmp_path):
    trl_config, trl_trainer, w2s_trainer = TRAINERS[kind]
    settings = {**BASE, **value}
    runs = []
    for trainer_class in (trl_trainer, w2s_trainer):
        # the same TRL config object for both: ours converts it, the weak-to-strong fields at their defaults
        args = trl_config(output_dir=str(tmp_path / trainer_class.__name__), **settings)
        runs.append(train(kind, trainer_class, args, models))
    assert_same(runs[1], runs[0])


@pytest.mark.parametrize("kind", list(TRAINERS))
def test_the_signatures_are_trls(kind):
    """The same parameters in the same order, of the same kinds, with the same defaults: positional code written for
    TRL's trainer passes each argument where TRL takes it, and a parameter TRL adds fails here until ours has it."""
    _, trl_trainer, w2s_trainer = TRAINERS[kind]

    def parameters(trainer_class) -> list[tuple[str, Any, Any]]:
        signature = inspect.signature(trainer_class.__init__)
        return [(p.name, p.kind, p.default) for p in signature.parameters.values()]

    assert parameters(w2s_trainer) == parameters(trl_trainer)


def test_built_positionally_with_trls_config_each_trains(models, tmp_path):
    from transformers import AutoTokenizer

    rows = generate_pairs(ROWS, seed=3).select_columns(["prompt", "chosen", "rejected"])
    settings = {**BASE, "max_steps": 1}
    reference = AutoModelForCausalLM.from_pretrained(models["reference"])
    tokenizer = AutoTokenizer.from_pretrained(models["dpo"])
    dpo_args = trl.DPOConfig(str(tmp_path / "dpo"), **settings)
    dpo = W2SDPOTrainer(str(models["dpo"]), reference, dpo_args, None, rows, rows, tokenizer, None)
    reward_args = trl.RewardConfig(str(tmp_path / "reward"), **settings)
    reward = W2SRewardTrainer(str(models["reward"]), reward_args, None, rows, rows, tokenizer, None)
    for trainer, config, w2s_config in [(dpo, dpo_args, W2SDPOConfig), (reward, reward_args, W2SRewardConfig)]:
        assert isinstance(trainer.args, w2s_config) and trainer.args.student_loss == "xent"
        assert trainer.args.learning_rate == config.learning_rate and trainer.args.output_dir == config.output_dir
        assert trainer.eval_dataset is not None and trainer.processing_class is tokenizer
        assert trainer.train().global_step == 1
    with pytest.raises(TypeError, match="args must be a W2SDPOConfig or a DPOConfig, got RewardConfig"):
        W2SDPOTrainer(str(models["dpo"]), reference, reward_args, None, rows)
