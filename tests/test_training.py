"""What the tasks share when they train a rung (`w2s_align.training`): held-out pairs, resuming, trainer arguments."""

import dataclasses
import json
from pathlib import Path

import pytest
from datasets import Dataset

from w2s_align.cards import trl_base
from w2s_align.options import StudentLossSettings
from w2s_align.recipe import LoraSettings, TrainingSettings
from w2s_align.tracking import TrackerRun
from w2s_align.training import PREDICTIONS_FILE, hold_out, last_whole_checkpoint, lora_config, record, trainer_kwargs

NO_TRACKER = TrackerRun(report_to=(), project="p", name="r/s", group="r/seed0", logging_dir=Path("t"))


def test_held_out_pairs_are_a_seeded_share_disjoint_from_the_training_pairs_and_in_their_order():
    pairs = Dataset.from_dict({"id": [f"p{i}" for i in range(20)]})
    train, validation = hold_out(pairs, 0.25, seed=3)
    assert validation.num_rows == 5 and train.num_rows == 15
    assert not set(train["id"]) & set(validation["id"])
    order = pairs["id"]
    assert train["id"] == sorted(train["id"], key=order.index) and validation["id"] == sorted(
        validation["id"], key=order.index
    )
    assert hold_out(pairs, 0.25, seed=3)[1]["id"] == validation["id"] != hold_out(pairs, 0.25, seed=4)[1]["id"]
    assert hold_out(pairs, 0.0, seed=3) == (pairs, None)
    assert hold_out(pairs, 0.001, seed=3)[1].num_rows == 1  # at least one validation pair


def test_resume_from_the_newest_whole_checkpoint_and_delete_the_half_written(tmp_path):
    for step, whole in ((10, True), (20, True), (30, False)):
        path = tmp_path / f"checkpoint-{step}"
        path.mkdir()
        if whole:
            (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    assert last_whole_checkpoint(tmp_path) == tmp_path / "checkpoint-20"
    assert not (tmp_path / "checkpoint-30").exists()
    assert last_whole_checkpoint(tmp_path / "none-yet") is None


def test_trainer_arguments_hold_the_rung_the_method_and_the_recipes_trainer_kwargs(tmp_path):
    settings = TrainingSettings(learning_rate=3e-4, logging_steps=5, trainer_kwargs={"lr_scheduler_type": "constant"})
    kwargs = trainer_kwargs(settings, StudentLossSettings(aux_coef=0.3), tmp_path, 7, "logconf", 0.5, NO_TRACKER)
    assert kwargs["output_dir"] == str(tmp_path / "checkpoints") and kwargs["seed"] == 7
    assert (kwargs["student_loss"], kwargs["conflict_alpha"], kwargs["aux_coef"]) == ("logconf", 0.5, 0.3)
    assert kwargs["learning_rate"] == 3e-4 and kwargs["lr_scheduler_type"] == "constant"
    assert kwargs["logging_steps"] == 5 and kwargs["eval_strategy"] == "no"  # no validation pairs to evaluate
    fraction = trainer_kwargs(
        TrainingSettings(validation_fraction=0.1), StudentLossSettings(), tmp_path, 0, "xent", 0.0, NO_TRACKER
    )
    assert fraction["logging_steps"] == 0.05 and fraction["eval_strategy"] == "epoch"


def test_a_recipes_run_passes_length_grouping_and_the_device_settings_the_trainer_classes_leave_to_trl(tmp_path):
    """The trainer classes keep TRL's defaults; the pipeline chooses its own explicitly, as it always trained: the
    rung's length grouping, the loss in float32, and bf16 and activation checkpointing derived from the device, which
    the rung's `trainer_kwargs` still override."""
    from w2s_align import W2SDPOConfig, W2SRewardConfig
    from w2s_align.device import DerivedDeviceDefaults, accelerator_available, bf16_supported

    def config(config_class, trainer_settings=None):
        settings = TrainingSettings(trainer_kwargs=trainer_settings or {})
        kwargs = trainer_kwargs(settings, StudentLossSettings(), tmp_path, 0, "xent", 0.0, NO_TRACKER)
        return config_class(**{**kwargs, "report_to": []})

    for config_class in (W2SRewardConfig, W2SDPOConfig):
        derived = dataclasses.make_dataclass("Derived", [], bases=(DerivedDeviceDefaults, trl_base(config_class)))
        args, old = config(config_class), derived(output_dir=str(tmp_path))
        assert args.train_sampling_strategy == "group_by_length"
        assert (args.bf16, args.activation_checkpointing, args.use_cpu) == (
            old.bf16,
            old.activation_checkpointing,
            old.use_cpu,
        )
        assert args.bf16 == bf16_supported() and args.activation_checkpointing == accelerator_available()
        own = config(config_class, {"fp16": accelerator_available(), "gradient_checkpointing": True})
        assert (own.bf16, own.fp16, own.activation_checkpointing) == (False, accelerator_available(), True)
        assert config(config_class, {"train_sampling_strategy": "random"}).train_sampling_strategy == "random"
        # the loss in float32 (TRL's, and the classes' default: in the outputs' dtype)
        assert args.float32_loss and not config_class(output_dir=str(tmp_path)).float32_loss
        assert not config(config_class, {"float32_loss": False}).float32_loss


def test_lora_only_where_the_rung_asks_for_it():
    assert lora_config(TrainingSettings(), "SEQ_CLS") is None
    config = lora_config(TrainingSettings(lora=LoraSettings(r=4, alpha=8)), "SEQ_CLS")
    assert (config.r, config.lora_alpha, config.task_type) == (4, 8, "SEQ_CLS")


def test_a_trained_models_test_predictions_are_saved_with_its_accuracy(tmp_path):
    predictions = Dataset.from_dict(
        {"id": ["a", "b", "c", "d"], "prob_chosen": [0.9, 0.8, 0.3, 0.6], "correct": [True, True, False, True]}
    )
    summary = record(predictions, tmp_path, {"train_steps": 3})
    assert summary == {"accuracy": pytest.approx(0.75), "train_steps": 3}
    assert Dataset.from_parquet(str(tmp_path / PREDICTIONS_FILE))["id"] == ["a", "b", "c", "d"]


def test_a_diverging_loss_stops_the_stage_with_one_line_naming_the_step_and_the_setting():
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from w2s_align.errors import W2SInputError
    from w2s_align.recipe import RungConfig
    from w2s_align.training import divergence_guard

    guard = divergence_guard("train-s-gt-seed0-abc", RungConfig(name="s", model="m"))
    args, state = TrainingArguments(output_dir="unused", learning_rate=3.0), TrainerState(global_step=7)
    guard.on_log(args, state, TrainerControl(), logs={"loss": 0.69, "grad_norm": 1.0})  # finite: trains on
    for logs in ({"loss": float("nan")}, {"loss": 0.7, "grad_norm": float("inf")}):
        with pytest.raises(W2SInputError) as error:
            guard.on_log(args, state, TrainerControl(), logs=logs)
        message = str(error.value)
        assert message.startswith("train-s-gt-seed0-abc: the training ") and "at step 7 (it diverged)" in message
        assert "lower the learning rate of rung 's' (3)" in message and "\n" not in message


def test_a_model_with_non_finite_predictions_is_not_recorded(tmp_path):
    from w2s_align.errors import W2SInputError

    predictions = Dataset.from_dict({"id": ["a", "b"], "prob_chosen": [0.7, float("nan")], "correct": [True, False]})
    with pytest.raises(W2SInputError, match="1 of its 2 test predictions are not finite numbers"):
        record(predictions, tmp_path, {})
    assert not (tmp_path / PREDICTIONS_FILE).exists()
