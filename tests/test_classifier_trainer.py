"""W2SClassifierTrainer: binary classification on soft labels (issue 40), on the tiny GPT-2 of conftest.py.

A classifier has no pair to swap; what replaces the swap-invariance tests is the label flip: flipping every label
(`p -> 1 - p`) and the model's two classes (its head's rows swapped, so `z1 - z0 -> z0 - z1`) gives the same loss for
every student loss, and trains the same model with its classes swapped.
"""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from w2s_align import W2SClassifierConfig, W2SClassifierTrainer
from w2s_align.losses import ClassBalanceHardening, StudentLossArguments, StudentObjective
from w2s_align.options import STUDENT_LOSSES
from w2s_align.synthetic import generate_pairs

COMMON = dict(report_to=[], save_strategy="no", disable_tqdm=True, logging_steps=1, per_device_train_batch_size=8)


@pytest.fixture
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def two_labels(tiny_model_dir, num_labels: int = 2):
    """The tiny reward model (one label) with a new head of `num_labels`."""
    return AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=num_labels, ignore_mismatched_sizes=True
    )


def classifier(tiny_model_dir, flipped: bool = False):
    """The tiny GPT-2 with a two-label head (seeded); `flipped`: the same model with its two classes swapped."""
    torch.manual_seed(0)
    model = two_labels(tiny_model_dir)
    if flipped:
        with torch.no_grad():
            model.score.weight.copy_(model.score.weight.flip(0))
    return model


def texts(n: int = 16, seed: int = 0) -> Dataset:
    """Anthropic HH as classification in miniature: a prompt with one of its responses, 1 if it is the chosen one."""
    pairs = generate_pairs(n, seed=seed)
    rows = [
        {"txt": row["prompt"] + (row["chosen"] if i % 2 else row["rejected"]), "hard_label": i % 2}
        for i, row in enumerate(pairs)
    ]
    return Dataset.from_list(rows)


def soft(data: Dataset, labels: list[float]) -> Dataset:
    return data.remove_columns("hard_label").add_column("soft_label", labels)


# Multiples of 1/16: a label and its flip, and their means, are exact in floating point.
SOFT = [0.875, 0.25, 0.5, 0.9375, 0.125, 0.75, 0.0625, 0.625] * 2


def trainer_for(model, tokenizer, data, tmp_path, **settings):
    args = W2SClassifierConfig(output_dir=str(tmp_path), **{**COMMON, **settings})
    return W2SClassifierTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)


def batch_loss(trainer) -> float:
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        return trainer.compute_loss(trainer.model, dict(batch)).item()


def test_hard_labels_give_transformers_classification_loss(tiny_model_dir, tokenizer, tmp_path):
    trainer = trainer_for(classifier(tiny_model_dir), tokenizer, texts(8), tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        ours = trainer.compute_loss(trainer.model, dict(batch)).item()
        inputs = {k: v for k, v in batch.items() if k != "hard_label"}
        theirs = trainer.model(**inputs, labels=batch["hard_label"].long()).loss.item()
    assert ours == pytest.approx(theirs, rel=1e-6)


@pytest.mark.parametrize("mode", ["smoothing", "weight"])
@pytest.mark.parametrize("student_loss", STUDENT_LOSSES)
def test_every_loss_is_the_same_with_the_labels_flipped(student_loss, mode, tiny_model_dir, tokenizer, tmp_path):
    if student_loss == "kl" and mode == "weight":
        pytest.skip("kl learns the soft label itself: no weight mode")
    losses = []
    for flipped in (False, True):
        labels = [1 - p for p in SOFT] if flipped else SOFT
        model = classifier(tiny_model_dir, flipped)
        trainer = trainer_for(
            model, tokenizer, soft(texts(16), labels), tmp_path / str(flipped),
            student_loss=student_loss, soft_label_mode=mode, per_device_train_batch_size=16, aux_warmup_frac=0.0,
        )  # fmt: skip
        trainer.model.train()
        batch = next(iter(trainer.get_train_dataloader()))
        losses.append(trainer.compute_loss(trainer.model, dict(batch)).item())
    assert math.isfinite(losses[0])
    assert losses[1] == pytest.approx(losses[0], rel=1e-6, abs=1e-7)


def test_training_on_flipped_labels_trains_the_flipped_model(tiny_model_dir, tokenizer, tmp_path):
    """logconf (the loss with state: its hardening window) over 4 steps: the same weights, the head's rows swapped
    (and not by chance: the weights moved)."""
    models = []
    for flipped in (False, True):
        labels = [1 - p for p in SOFT] if flipped else SOFT
        trainer = trainer_for(
            classifier(tiny_model_dir, flipped), tokenizer, soft(texts(16), labels), tmp_path / str(flipped),
            student_loss="logconf", per_device_train_batch_size=4, learning_rate=1e-2, hardening_window=6,
            optim="sgd",  # Adam would turn a rounding difference in a gradient near 0 into a step of the rate
        )  # fmt: skip
        trainer.train()
        models.append(trainer.model)
    plain, flipped = (dict(m.named_parameters()) for m in models)
    start = dict(classifier(tiny_model_dir).named_parameters())
    assert not torch.allclose(plain["score.weight"], start["score.weight"])
    for name, weight in plain.items():
        expected = weight.flip(0) if name == "score.weight" else weight
        torch.testing.assert_close(flipped[name], expected, rtol=1e-5, atol=1e-6, msg=name)


def test_class_balance_hardening_keeps_the_weak_labels_balance_and_flips_with_them():
    logits = torch.tensor([3.0, 2.0, 1.0, 1.0, 0.5, -1.0, -2.0, -3.0])
    hard = ClassBalanceHardening(positive_share=0.25, window=0)(logits)
    assert hard.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # 2 of 8 although 5 logits are above 0
    tied = ClassBalanceHardening(positive_share=0.375, window=0)(logits)  # the boundary falls between two ties
    assert tied.tolist() == [1.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]
    flipped = ClassBalanceHardening(positive_share=0.625, window=0)(-logits)
    assert flipped.tolist() == [1 - h for h in tied.tolist()]
    # the window: a batch of two ranked among the 6 predictions before it
    windowed = ClassBalanceHardening(positive_share=0.5, window=6)
    windowed(torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0]))
    assert windowed(torch.tensor([-1.0, 2.5])).tolist() == [0.0, 1.0]
    assert ClassBalanceHardening(positive_share=0.5, window=0)(torch.tensor([-1.0, 2.5])).tolist() == [0.0, 1.0]


def test_logconf_hardens_at_the_training_sets_balance(tiny_model_dir, tokenizer, tmp_path):
    """With the student's weight at 1, logconf's target is the hardened prediction: the 4 of 16 highest logits (the
    labels' mean is 1/4) are 1, whatever their sign."""
    labels = [1.0, 0.0, 0.0, 0.0] * 4
    trainer = trainer_for(
        classifier(tiny_model_dir), tokenizer, soft(texts(16), labels), tmp_path,
        student_loss="logconf", aux_coef=1.0, aux_warmup_frac=0.0, per_device_train_batch_size=16,
    )  # fmt: skip
    assert trainer._objective.hardening.positive_share == 0.25
    batch = dict(next(iter(trainer.get_train_dataloader())))
    for module in trainer.model.modules():  # the student's own target is built in training: no dropout there
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    trainer.model.train()
    with torch.no_grad():
        logits = trainer.model(**{k: v for k, v in batch.items() if k != "soft_label"}).logits
        z = logits[:, 1] - logits[:, 0]
        loss = trainer.compute_loss(trainer.model, batch).item()
    hard = torch.zeros(16)
    hard[z.argsort(descending=True)[:4]] = 1.0
    expected = torch.nn.functional.binary_cross_entropy_with_logits(z, hard).item()
    assert loss == pytest.approx(expected, rel=1e-5)
    assert StudentObjective(StudentLossArguments(student_loss="logconf")).hardening is None  # pairs: at 0.5


def test_the_ground_truth_never_reaches_a_student(tiny_model_dir, tokenizer, tmp_path):
    data = texts(8).add_column("soft_label", [0.7] * 8)
    trainer = trainer_for(classifier(tiny_model_dir), tokenizer, data, tmp_path)
    assert "hard_label" not in trainer.train_dataset.column_names
    batch = next(iter(trainer.get_train_dataloader()))
    assert "hard_label" not in batch and batch["soft_label"].tolist() == pytest.approx([0.7] * 8)


def test_training_follows_the_soft_labels(tiny_model_dir, tokenizer, tmp_path):
    data = texts(16)
    labels = [0.95 if i % 4 < 2 else 0.05 for i in range(16)]  # not the ground truth: a teacher's own view
    trainer = trainer_for(
        classifier(tiny_model_dir), tokenizer, soft(data, labels), tmp_path,
        learning_rate=3e-3, num_train_epochs=8, eval_strategy="no",
    )  # fmt: skip
    trainer.train()
    predictions = trainer.predict(trainer.train_dataset)
    agreement = ((predictions.predictions > 0) == (torch.tensor(labels) > 0.5).numpy()).mean()
    assert agreement >= 0.9
    logged = [log for log in trainer.state.log_history if "loss" in log]
    assert {"label_agreement", "soft_label_confidence", "loss_xent"} <= set(logged[0])


def test_evaluation_accuracy_is_against_the_ground_truth_over_the_whole_set(tiny_model_dir, tokenizer, tmp_path):
    train = soft(texts(8), [0.6] * 8)
    test = texts(10, seed=1)
    args = W2SClassifierConfig(output_dir=str(tmp_path), **{**COMMON, "per_device_eval_batch_size": 4})
    trainer = W2SClassifierTrainer(
        model=classifier(tiny_model_dir), args=args, train_dataset=train, eval_dataset=test, processing_class=tokenizer
    )
    metrics = trainer.evaluate()
    logits = trainer.predict(trainer.eval_dataset).predictions
    expected = ((logits > 0) == (torch.tensor(test["hard_label"]) > 0.5).numpy()).mean()
    assert metrics["eval_accuracy"] == pytest.approx(expected)
    assert len(logits) == 10


def test_a_model_by_path_loads_with_two_labels_and_logconf_trains(tiny_model_dir, tokenizer, tmp_path):
    classifier(tiny_model_dir).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    args = W2SClassifierConfig(output_dir=str(tmp_path / "out"), student_loss="logconf", **COMMON)
    trainer = W2SClassifierTrainer(model=str(tmp_path / "model"), args=args, train_dataset=soft(texts(8), SOFT[:8]))
    assert trainer.model.config.num_labels == 2
    trainer.train()
    assert "aux_coef" in trainer.state.log_history[0]


def test_lora_trains_only_the_adapters_and_the_head(tiny_model_dir, tokenizer, tmp_path):
    from peft import LoraConfig

    model = classifier(tiny_model_dir)
    args = W2SClassifierConfig(output_dir=str(tmp_path), **COMMON)
    peft_config = LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["c_attn"])
    trainer = W2SClassifierTrainer(
        model=model, args=args, train_dataset=texts(8), processing_class=tokenizer, peft_config=peft_config
    )
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or "score" in name for name in trainable)
    trainer.train()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"conflict_alpha": 0.5}, "preference-pair feature"),
        ({"hardening_window": -1}, "hardening_window"),
        ({"max_length": 0}, "max_length"),
    ],
)
def test_config_refuses_what_a_classifier_cannot_do(settings, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        W2SClassifierConfig(output_dir=str(tmp_path), report_to=[], **settings)


def test_datasets_and_models_it_cannot_read_are_refused_with_their_names(tiny_model_dir, tokenizer, tmp_path):
    with pytest.raises(ValueError, match="'text'.*dataset_text_field"):
        trainer_for(classifier(tiny_model_dir), tokenizer, texts(4), tmp_path, dataset_text_field="text")
    with pytest.raises(ValueError, match="'soft_label' or 'hard_label'"):
        trainer_for(classifier(tiny_model_dir), tokenizer, texts(4).remove_columns("hard_label"), tmp_path)
    three = two_labels(tiny_model_dir, num_labels=3)
    with pytest.raises(ValueError, match="num_labels=3"):
        trainer_for(three, tokenizer, texts(4), tmp_path)


def test_over_long_texts_are_dropped_as_the_reference_drops_them(tiny_model_dir, tokenizer, tmp_path):
    data = texts(8)
    lengths = [len(tokenizer(t)["input_ids"]) for t in data["txt"]]
    limit = sorted(lengths)[3]
    trainer = trainer_for(classifier(tiny_model_dir), tokenizer, data, tmp_path, max_length=limit)
    assert trainer.train_dataset.num_rows == sum(length <= limit for length in lengths)
