"""TRL's defaults and outputs, as a TRL user would check them: the W2S trainers with default configs train on TRL's
batches to TRL's first-step loss, and a `compute_metrics` receives what TRL gives it, with the W2S metric beside."""

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

from w2s_align import W2SDPOConfig, W2SDPOTrainer, W2SRewardConfig, W2SRewardTrainer
from w2s_align.device import accelerator_available
from w2s_align.synthetic import generate_pairs

# What TRL's own test suite adds on a machine without an accelerator, where TRL's configs otherwise stop on bf16.
TRL_ON_THIS_MACHINE = {} if accelerator_available() else {"use_cpu": True}
COMMON = dict(report_to=[], save_strategy="no", disable_tqdm=True, logging_steps=1, per_device_train_batch_size=4)
RESOLVED = ("bf16", "fp16", "use_cpu", "activation_checkpointing", "gradient_checkpointing", "train_sampling_strategy")


def pairs(n=12, seed=0):
    return generate_pairs(n, seed=seed).select_columns(["prompt", "chosen", "rejected"])


@pytest.fixture(scope="module")
def policy_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model saved as a causal LM, as TRL loads a policy."""
    directory = tmp_path_factory.mktemp("tiny-policy")
    AutoModelForCausalLM.from_pretrained(tiny_model_dir).save_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize(
    "given",
    [{}, {"bf16": False}, {"use_cpu": True}, {"activation_checkpointing": False}, {"gradient_checkpointing": False}],
    ids=["defaults", "no-bf16", "use-cpu", "no-activation-checkpointing", "no-gradient-checkpointing"],
)
@pytest.mark.parametrize(("ours", "theirs"), [(W2SRewardConfig, RewardConfig), (W2SDPOConfig, DPOConfig)])
def test_the_configs_resolve_precision_checkpointing_and_sampling_as_trls(ours, theirs, given, tmp_path):
    trl = theirs(output_dir=str(tmp_path), report_to=[], **{**TRL_ON_THIS_MACHINE, **given})
    w2s = ours(output_dir=str(tmp_path), report_to=[], **given)
    assert {name: getattr(w2s, name) for name in RESOLVED} == {name: getattr(trl, name) for name in RESOLVED}


def test_without_an_accelerator_the_cpu_trains_as_in_trls_tests_and_says_so_in_one_line(tmp_path, caplog):
    if accelerator_available():
        pytest.skip("this machine has an accelerator: TRL's rules apply unchanged")
    with pytest.raises(ValueError, match="doesn't support bf16"):  # TRL's own configs, as they are
        RewardConfig(output_dir=str(tmp_path), report_to=[])
    W2SRewardConfig(output_dir=str(tmp_path), report_to=[])
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("w2s_align")]
    assert len(lines) == 1 and "use_cpu=True" in lines[0] and "bf16=False" in lines[0]
    caplog.clear()
    W2SRewardConfig(output_dir=str(tmp_path), report_to=[], bf16=False)  # nothing to say: fp32 as asked
    assert not [record for record in caplog.records if record.name.startswith("w2s_align")]


def first_step(trainer) -> tuple[float, torch.Tensor]:
    """The first step's logged loss and the parameters after it."""
    trainer.train()
    loss = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    return loss, torch.cat([parameter.detach().flatten() for parameter in trainer.model.parameters()])


def test_the_reward_trainer_with_default_configs_takes_trls_first_step(tiny_model_dir, tmp_path):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    data, steps = pairs(), dict(max_steps=1, **COMMON)
    trl = RewardTrainer(
        model=copy.deepcopy(model),
        args=RewardConfig(str(tmp_path / "trl"), **TRL_ON_THIS_MACHINE, **steps),
        train_dataset=data,
        processing_class=tokenizer,
    )
    ours = W2SRewardTrainer(
        model=copy.deepcopy(model),
        args=W2SRewardConfig(str(tmp_path / "w2s"), **steps),
        train_dataset=data,
        processing_class=tokenizer,
    )
    assert torch.equal(
        next(iter(trl.get_train_dataloader()))["input_ids"], next(iter(ours.get_train_dataloader()))["input_ids"]
    )
    (trl_loss, trl_params), (our_loss, our_params) = first_step(trl), first_step(ours)
    assert our_loss == pytest.approx(trl_loss, rel=1e-6)
    assert torch.allclose(our_params, trl_params, atol=1e-7)


def test_the_dpo_trainer_with_default_configs_takes_trls_first_step(policy_dir, tmp_path):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    data, steps = pairs(), dict(max_steps=1, **COMMON)
    trl = DPOTrainer(
        model=copy.deepcopy(model),
        ref_model=copy.deepcopy(model),
        args=DPOConfig(str(tmp_path / "trl"), **TRL_ON_THIS_MACHINE, **steps),
        train_dataset=data,
        processing_class=tokenizer,
    )
    ours = W2SDPOTrainer(
        model=copy.deepcopy(model),
        args=W2SDPOConfig(str(tmp_path / "w2s"), **steps),
        train_dataset=data,
        processing_class=tokenizer,
    )
    (trl_loss, trl_params), (our_loss, our_params) = first_step(trl), first_step(ours)
    assert our_loss == pytest.approx(trl_loss, rel=1e-6)
    assert torch.allclose(our_params, trl_params, atol=1e-7)


def test_compute_metrics_receives_trls_predictions_and_the_w2s_accuracy_is_added_beside(tiny_model_dir, tmp_path):
    """TRL's RewardTrainer hands a `compute_metrics` each batch's rewards (chosen rows, then rejected ones) and no
    labels; the W2S `eval_accuracy` (agreement with the labels over the whole split) stays beside the user's."""
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = pairs(10)
    received = {"trl": [], "w2s": []}

    def recorder(name):
        def compute_metrics(prediction):
            received[name].append(prediction)
            return {"mine": 1.0}

        return compute_metrics

    common = dict(report_to=[], bf16=False, per_device_eval_batch_size=4)
    trl = RewardTrainer(
        model=model,
        args=RewardConfig(str(tmp_path / "trl"), **common),
        train_dataset=data,
        eval_dataset=data,
        processing_class=tokenizer,
        compute_metrics=recorder("trl"),
    )
    trl.evaluate()
    trainers = {}
    for name, compute_metrics in (("w2s", recorder("w2s")), ("alone", None)):
        args = W2SRewardConfig(str(tmp_path / name), **common)
        trainers[name] = W2SRewardTrainer(
            model=model,
            args=args,
            train_dataset=data,
            eval_dataset=data,
            processing_class=tokenizer,
            compute_metrics=compute_metrics,
        )
    metrics, alone = trainers["w2s"].evaluate(), trainers["alone"].evaluate()
    (theirs,), (ours,) = received["trl"], received["w2s"]
    assert ours.predictions.shape == theirs.predictions.shape
    assert ours.predictions == pytest.approx(theirs.predictions, abs=1e-6)
    assert ours.label_ids == theirs.label_ids == ()
    assert metrics["eval_mine"] == 1.0
    assert metrics["eval_accuracy"] == alone["eval_accuracy"] is not None


def test_a_user_metric_of_the_same_name_is_kept(tiny_model_dir, tmp_path):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    args = W2SRewardConfig(str(tmp_path), report_to=[], bf16=False)
    trainer = W2SRewardTrainer(
        model=model,
        args=args,
        train_dataset=pairs(8),
        eval_dataset=pairs(8),
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
        compute_metrics=lambda prediction: {"accuracy": -1.0},
    )
    assert trainer.evaluate()["eval_accuracy"] == -1.0


def test_the_dpo_trainers_compute_metrics_receives_trls_logits_and_input_ids(policy_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    data = pairs(6)
    received = {}

    def recorder(name):
        def compute_metrics(prediction):
            received[name] = prediction
            return {"mine": 1.0}

        return compute_metrics

    common = dict(report_to=[], bf16=False, per_device_eval_batch_size=4)
    trl = DPOTrainer(
        model=copy.deepcopy(model),
        ref_model=copy.deepcopy(model),
        args=DPOConfig(str(tmp_path / "trl"), **common),
        train_dataset=data,
        eval_dataset=data,
        processing_class=tokenizer,
        compute_metrics=recorder("trl"),
    )
    with pytest.warns(FutureWarning):  # TRL deprecates these logits (one more forward pass); they are still TRL's
        trl.evaluate()
    ours = W2SDPOTrainer(
        model=copy.deepcopy(model),
        args=W2SDPOConfig(str(tmp_path / "w2s"), **common),
        train_dataset=data,
        eval_dataset=data,
        processing_class=tokenizer,
        compute_metrics=recorder("w2s"),
    )
    metrics = ours.evaluate()
    assert received["w2s"].predictions.shape == received["trl"].predictions.shape
    assert received["w2s"].predictions == pytest.approx(received["trl"].predictions, abs=1e-5)
    assert (received["w2s"].label_ids == received["trl"].label_ids).all()
    assert metrics["eval_mine"] == 1.0 and "eval_accuracy" in metrics
