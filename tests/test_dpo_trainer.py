"""W2SDPOTrainer: the losses on hand-computed log-probabilities, the reference model, SimPO, the explicit conflict."""

import math

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from w2s_align import W2SDPOConfig, W2SDPOTrainer
from w2s_align.policy_predictions import sequence_logps, tokenize_completions
from w2s_align.synthetic import generate_pairs

COMMON = dict(report_to=[], save_strategy="no", disable_tqdm=True, logging_steps=1, per_device_train_batch_size=4)


@pytest.fixture
def tokenizer(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.pad_token = tok.eos_token
    return tok


def policy(tiny_model_dir, seed=0):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def pairs(n=4, soft=None, seed=0):
    data = generate_pairs(n, seed=seed).select_columns(["id", "prompt", "chosen", "rejected"])
    return data if soft is None else data.add_column("soft_label", soft)


def logsig(x):
    return -math.log(1 + math.exp(-x))


def hand_logps(model, tokenizer, data):
    """Summed completion log-probabilities of every chosen then rejected response, computed independently."""
    sequences, lengths = tokenize_completions(data, tokenizer, max_length=512)
    return sequence_logps(model, sequences, lengths, tokenizer.pad_token_id, batch_size=1), lengths


def hand_logits(model, reference, tokenizer, data, beta):
    """Each pair's DPO preference logit `beta * (logratio_chosen - logratio_rejected)`, computed independently."""
    lp, _ = hand_logps(model, tokenizer, data)
    ref, _ = hand_logps(reference, tokenizer, data)
    n = len(data)
    return [beta * ((lp[i] - ref[i]) - (lp[n + i] - ref[n + i])) for i in range(n)]


def batch_loss(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        return trainer.compute_loss(trainer.model, dict(batch)).item()


def test_soft_label_dpo_loss_matches_hand_computation(tiny_model_dir, tokenizer, tmp_path):
    soft = [0.9, 0.2, 0.6, 1.0]
    data = pairs(4, soft)
    model, reference = policy(tiny_model_dir, 0), policy(tiny_model_dir, 1)
    with torch.no_grad():  # make the policy differ from the reference
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    args = W2SDPOConfig(output_dir=str(tmp_path), beta=0.5, **COMMON)  # one batch: the mean ignores order
    trainer = W2SDPOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer
    )
    logits = hand_logits(model, reference, tokenizer, data, beta=0.5)
    expected = sum(-(p * logsig(x) + (1 - p) * logsig(-x)) / 4 for p, x in zip(soft, logits))
    assert batch_loss(trainer) == pytest.approx(expected, rel=1e-4)


def test_hard_labels_give_the_dpo_sigmoid_loss(tiny_model_dir, tokenizer, tmp_path):
    data = pairs(4)
    model, reference = policy(tiny_model_dir, 0), policy(tiny_model_dir, 1)
    args = W2SDPOConfig(output_dir=str(tmp_path), beta=0.1, **COMMON)
    trainer = W2SDPOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer
    )
    expected = sum(-logsig(x) for x in hand_logits(model, reference, tokenizer, data, beta=0.1)) / 4
    assert batch_loss(trainer) == pytest.approx(expected, rel=1e-4)


def test_simpo_loss_and_no_reference(tiny_model_dir, tokenizer, tmp_path):
    soft = [1.0, 0.7, 0.3, 1.0]
    data = pairs(4, soft)
    model = policy(tiny_model_dir)
    args = W2SDPOConfig(output_dir=str(tmp_path), loss_type="simpo", beta=2.0, simpo_gamma=0.5, **COMMON)
    trainer = W2SDPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    assert trainer.ref_model is None
    lp, lengths = hand_logps(model, tokenizer, data)
    expected = 0.0
    for i, p in enumerate(soft):
        x = 2.0 * (lp[i] / lengths[i] - lp[4 + i] / lengths[4 + i])
        expected += (-p * logsig(x - 0.5) - (1 - p) * logsig(-x - 0.5)) / 4
    assert batch_loss(trainer) == pytest.approx(expected, rel=1e-4)


def test_explicit_conflict_term_on_hand_computed_logps(tiny_model_dir, tokenizer, tmp_path):
    data = pairs(4).add_column("conflict_label", [0.0] * 4)  # `rejected` is the harmful response
    model, reference = policy(tiny_model_dir, 0), policy(tiny_model_dir, 1)
    torch.manual_seed(6)
    with torch.no_grad():  # a policy that differs from its reference, one way on some pairs and the other on others
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    args = W2SDPOConfig(output_dir=str(tmp_path), beta=1.0, conflict_alpha=0.5, **COMMON)
    trainer = W2SDPOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer
    )
    lp, _ = hand_logps(model, tokenizer, data)
    ref, _ = hand_logps(reference, tokenizer, data)
    logits = [(lp[i] - ref[i]) - (lp[4 + i] - ref[4 + i]) for i in range(4)]
    likelihood = [lp[i] - lp[4 + i] for i in range(4)]
    dpo = sum(-logsig(x) for x in logits) / 4
    # alpha * mean_i c_i * (-log sigmoid(u_harmful - u_safe)), c_i = 1 where the policy already finds the harmful
    # `rejected` more likely (its raw log-likelihood, as Yang et al.; not the implicit reward)
    conflict = 0.5 * sum(-logsig(-x) for x, raw in zip(logits, likelihood) if raw < 0) / 4
    assert any(raw < 0 for raw in likelihood), "the test needs a pair the policy gets wrong"
    assert any((x < 0) != (raw < 0) for x, raw in zip(logits, likelihood)), "the test needs the two triggers to differ"
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()  # the conflict term is a training-time term
    loss = trainer.compute_loss(trainer.model, dict(batch)).item()
    assert loss == pytest.approx(dpo + conflict, rel=1e-4)


def test_reference_is_the_starting_policy_even_for_a_model_built_in_memory(tokenizer, tmp_path):
    # TRL would reload the reference from `config._name_or_path`, which does not exist for this model.
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=1, n_head=2, pad_token_id=tokenizer.pad_token_id
    )
    model = GPT2LMHeadModel(config)
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = W2SDPOConfig(output_dir=str(tmp_path), learning_rate=1e-2, max_steps=3, **COMMON)
    trainer = W2SDPOTrainer(model=model, args=args, train_dataset=pairs(12), processing_class=tokenizer)
    assert trainer.ref_model is not None and trainer.ref_model is not model
    trainer.train()
    reference = dict(trainer.ref_model.named_parameters())
    assert all(torch.equal(reference[name], value) for name, value in start.items())
    trained = dict(trainer.model.named_parameters())
    assert any(not torch.equal(trained[name], value) for name, value in start.items())


def test_precomputed_reference_uses_the_starting_policy(tiny_model_dir, tokenizer, tmp_path):
    data = pairs(4)
    model = policy(tiny_model_dir)
    lp, _ = hand_logps(model, tokenizer, data)
    args = W2SDPOConfig(output_dir=str(tmp_path), precompute_ref_log_probs=True, **COMMON)
    trainer = W2SDPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    by_id = {row["id"]: row for row in trainer.train_dataset}
    for i, row_id in enumerate(data["id"]):
        assert by_id[row_id]["ref_chosen_logps"] == pytest.approx(lp[i], rel=1e-4)
        assert by_id[row_id]["ref_rejected_logps"] == pytest.approx(lp[4 + i], rel=1e-4)


def test_config_refuses_student_losses_the_batch_losses_cannot_take_and_simpo_with_reference_options(tmp_path):
    for loss, reason in [("aot", "sorts the batch"), ("aot_unpaired", "sorts the batch"), ("sft", "preferred")]:
        assert W2SDPOConfig(output_dir=str(tmp_path), loss_type=["sigmoid", loss]).loss_type == ["sigmoid", loss]
        with pytest.raises(ValueError, match=f"student_loss 'logconf' weighs each pair's loss.*{reason}"):
            W2SDPOConfig(output_dir=str(tmp_path), loss_type=["sigmoid", loss], student_loss="logconf")
    with pytest.raises(ValueError, match="unknown loss_type 'sigmiod'"):
        W2SDPOConfig(output_dir=str(tmp_path), loss_type="sigmiod")
    with pytest.raises(ValueError, match="a loss of its own"):
        W2SDPOConfig(output_dir=str(tmp_path), loss_type=["simpo", "hinge"])
    for option in [{"precompute_ref_log_probs": True}, {"ld_alpha": 0.5}, {"use_weighting": True}]:
        with pytest.raises(ValueError, match="SimPO .* uses no reference model"):
            W2SDPOConfig(output_dir=str(tmp_path), loss_type="simpo", **option)
    with pytest.raises(ValueError, match="'kl' is a divergence of the sigmoid"):
        W2SDPOConfig(output_dir=str(tmp_path), loss_type="hinge", student_loss="kl")
    with pytest.raises(ValueError, match="'kl' has no margin for SimPO"):
        W2SDPOConfig(output_dir=str(tmp_path), loss_type="simpo", student_loss="kl")
    assert W2SDPOConfig(output_dir=str(tmp_path), student_loss="kl").student_loss == "kl"  # DPO takes it


def test_logconf_dpo_trains_and_logs(tiny_model_dir, tokenizer, tmp_path):
    data = pairs(16, [0.8, 0.3, 0.6, 0.9] * 4)
    args = W2SDPOConfig(output_dir=str(tmp_path), student_loss="logconf", num_train_epochs=1, **COMMON)
    trainer = W2SDPOTrainer(model=policy(tiny_model_dir), args=args, train_dataset=data, processing_class=tokenizer)
    trainer.train()
    logs = [log for log in trainer.state.log_history if "aux_coef" in log]
    assert len(logs) == 4 and logs[0]["aux_coef"] == 0.0 and logs[-1]["aux_coef"] == pytest.approx(0.5)
    assert all("rewards/margins" in log and "label_agreement" in log for log in logs)


def test_text_dataset_without_prompt_column_is_refused_by_trl_format(tiny_model_dir, tokenizer, tmp_path):
    data = Dataset.from_dict({"chosen": ["Human: hi\n\nAssistant: hello"], "rejected": ["Human: hi\n\nAssistant: no"]})
    args = W2SDPOConfig(output_dir=str(tmp_path), max_steps=1, **COMMON)
    trainer = W2SDPOTrainer(model=policy(tiny_model_dir), args=args, train_dataset=data, processing_class=tokenizer)
    assert trainer.train().global_step == 1  # TRL extracts the shared prompt itself


def test_evaluation_accuracy_is_agreement_of_the_implicit_reward_with_the_labels(tiny_model_dir, tokenizer, tmp_path):
    soft = [0.9, 0.2, 0.6, 0.1, 0.7]
    data = pairs(5, soft)
    model, reference = policy(tiny_model_dir, 0), policy(tiny_model_dir, 1)
    with torch.no_grad():  # make the policy differ from the reference (equal, every margin is a tie: wrong)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    args = W2SDPOConfig(output_dir=str(tmp_path), beta=0.5, per_device_eval_batch_size=2, **COMMON)
    trainer = W2SDPOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=data, eval_dataset=data, processing_class=tokenizer
    )
    lp, _ = hand_logps(model, tokenizer, data)
    ref, _ = hand_logps(reference, tokenizer, data)
    margins = [(lp[i] - ref[i]) - (lp[5 + i] - ref[5 + i]) for i in range(5)]
    expected = sum((m > 0) == (p > 0.5) for m, p in zip(margins, soft)) / 5
    assert 0 < expected < 1  # the test can tell agreement from its opposite
    assert trainer.evaluate()["eval_accuracy"] == pytest.approx(expected)


def perturbed(model, scale=0.05, seed=2):
    """The model with every weight moved a little: a policy that differs from its reference."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return model


# TRL's DPO options, each checked against trl.DPOTrainer on the same pairs, policy and reference.
TRL_OPTIONS = [
    *({"loss_type": [loss]} for loss in ("hinge", "ipo", "nca_pair", "bco_pair", "sppo_hard", "apo_zero")),
    *({"loss_type": [loss]} for loss in ("apo_down", "discopop", "sigmoid_norm")),
    {"loss_type": ["exo_pair"], "label_smoothing": 1e-3},
    {"loss_type": ["robust"], "label_smoothing": 0.1},
    {"loss_type": ["sigmoid", "hinge", "ipo"], "loss_weights": [1.0, 0.5, 0.2]},
    {"ld_alpha": 0.5},
    {"f_divergence_type": "forward_kl"},
    {"f_divergence_type": "js_divergence"},
    {"f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.5},
    {"use_weighting": True},
    {"use_weighting": True, "loss_type": ["ipo"]},
    {"precompute_ref_log_probs": True},
    {"loss_type": ["sigmoid"], "loss_weights": [2.0]},  # a single loss is weighed too
    *({"loss_type": [loss]} for loss in ("aot", "aot_unpaired", "sft")),
    {"loss_type": ["sigmoid", "bco_pair", "sft"], "loss_weights": [0.8, 0.2, 1.0]},  # MPO
]


@pytest.mark.parametrize("option", TRL_OPTIONS, ids=lambda option: "-".join(f"{k}={v}" for k, v in option.items()))
def test_every_trl_option_gives_trls_first_batch_loss_with_hard_labels(option, tiny_model_dir, tokenizer, tmp_path):
    from trl import DPOConfig, DPOTrainer

    data = pairs(4)
    losses = []
    for config, trainer_class in [(DPOConfig, DPOTrainer), (W2SDPOConfig, W2SDPOTrainer)]:
        # TRL's config turns bf16 on by default, which a CPU refuses; ours derives it from the device.
        settings = {"beta": 0.5, **option}
        args = config(output_dir=str(tmp_path / trainer_class.__name__), bf16=False, **COMMON, **settings)
        model, reference = perturbed(policy(tiny_model_dir, 0)), policy(tiny_model_dir, 1)
        trainer = trainer_class(
            model=model, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer
        )
        losses.append(batch_loss(trainer))  # one batch of all 4 pairs: the mean does not depend on their order
    assert math.isfinite(losses[0])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_discopop_is_finite_where_trls_is(tiny_model_dir, tokenizer, tmp_path):
    """Beyond |beta x margin| = 88 the reading the other way round (which a hard label weighs by 0) overflowed: NaN."""
    from trl import DPOConfig, DPOTrainer

    beta, data = 2000.0, pairs(4)
    model, reference = perturbed(policy(tiny_model_dir, 0)), policy(tiny_model_dir, 1)
    wrong_way = [x < 0 for x in hand_logits(model, reference, tokenizer, data, beta)]
    data = data.map(  # every pair stored with the policy's preferred response first: TRL's loss is finite
        lambda row, i: {"chosen": row["rejected"], "rejected": row["chosen"]} if wrong_way[i] else {},
        with_indices=True,
    )
    assert min(abs(x) for x in hand_logits(model, reference, tokenizer, data, beta)) > 88
    losses = []
    for config, trainer_class in [(DPOConfig, DPOTrainer), (W2SDPOConfig, W2SDPOTrainer)]:
        args = config(output_dir=str(tmp_path), beta=beta, loss_type="discopop", bf16=False, **COMMON)
        trainer = trainer_class(
            model=model, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer
        )
        losses.append(batch_loss(trainer))
    assert math.isfinite(losses[0])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5, abs=1e-7)


BATCH_LOSSES = [["aot"], ["aot_unpaired"], ["sft"], ["sigmoid", "bco_pair", "sft"]]


@pytest.mark.parametrize("loss_type", BATCH_LOSSES, ids="-".join)
def test_the_batch_losses_read_a_label_of_zero_as_the_swapped_pair(loss_type, tiny_model_dir, tokenizer, tmp_path):
    """TRL's loss on pairs stored the right way round equals ours on the same pairs, half stored the other way round
    with a label of 0: a hard label orients the pair before the batch's responses are sorted or averaged."""
    from trl import DPOConfig, DPOTrainer

    data = pairs(4)
    flipped = [False, True, False, True]
    stored = Dataset.from_dict(
        {
            "prompt": data["prompt"],
            "chosen": [row["rejected"] if f else row["chosen"] for row, f in zip(data, flipped)],
            "rejected": [row["chosen"] if f else row["rejected"] for row, f in zip(data, flipped)],
            "soft_label": [0.0 if f else 1.0 for f in flipped],
        }
    )
    losses = []
    for config, trainer_class, dataset in [(DPOConfig, DPOTrainer, data), (W2SDPOConfig, W2SDPOTrainer, stored)]:
        args = config(output_dir=str(tmp_path), beta=0.5, bf16=False, loss_type=loss_type, **COMMON)
        model, reference = perturbed(policy(tiny_model_dir, 0)), policy(tiny_model_dir, 1)
        trainer = trainer_class(
            model=model, ref_model=reference, args=args, train_dataset=dataset, processing_class=tokenizer
        )
        losses.append(batch_loss(trainer))
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_sft_takes_wpo_weights_where_trl_crashes(tiny_model_dir, tokenizer, tmp_path):
    """TRL 1.16 scales sft's expanded batch mean in place by the WPO weights (a RuntimeError); ours weighs it by their
    mean, the value TRL's expression means."""
    losses = []
    for use_weighting in (True, False):
        args = W2SDPOConfig(output_dir=str(tmp_path), loss_type=["sft"], use_weighting=use_weighting, **COMMON)
        model = policy(tiny_model_dir)  # one each: TRL sets the model's fused head up for WPO's weights
        trainer = W2SDPOTrainer(model=model, args=args, train_dataset=pairs(4), processing_class=tokenizer)
        losses.append(batch_loss(trainer))
    assert 0 < losses[0] < losses[1]  # each WPO weight is a product of probabilities, below 1


def test_the_batch_losses_refuse_a_soft_label_when_it_is_given(tiny_model_dir, tokenizer, tmp_path):
    args = W2SDPOConfig(output_dir=str(tmp_path), loss_type=["sigmoid", "aot"], **COMMON)
    model = policy(tiny_model_dir)
    with pytest.raises(ValueError, match=r"the train dataset has soft labels \(e.g. 0.7\).*'aot'.*sorts the batch"):
        W2SDPOTrainer(model, None, args, None, pairs(4, [1.0, 0.7, 0.0, 1.0]), processing_class=tokenizer)
    with pytest.raises(ValueError, match="the eval dataset has soft labels"):
        W2SDPOTrainer(model, None, args, None, pairs(4), pairs(4, [0.5] * 4), processing_class=tokenizer)
    # a streamed or collated soft label: refused at the first batch that carries one
    trainer = W2SDPOTrainer(model, None, args, None, pairs(4, [1.0, 0.0, 0.0, 1.0]), processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    batch["soft_label"] = torch.tensor([1.0, 0.9, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"a batch has soft labels \(e.g. 0.9\)"):
        trainer.compute_loss(trainer.model, batch)


@pytest.mark.parametrize("option", [{"loss_type": ["sigmoid"]}, *TRL_OPTIONS[:14], {"use_weighting": True}])
def test_every_loss_is_the_same_for_a_pair_and_its_swap(option, tiny_model_dir, tokenizer, tmp_path):
    soft = [0.9, 0.2, 0.6, 0.5]
    data = pairs(4, soft)
    swapped = data.map(
        lambda row: {"chosen": row["rejected"], "rejected": row["chosen"], "soft_label": 1 - row["soft_label"]}
    )
    losses = []
    for dataset in (data, swapped):
        args = W2SDPOConfig(output_dir=str(tmp_path), beta=0.5, **COMMON, **option)
        model, reference = perturbed(policy(tiny_model_dir, 0)), policy(tiny_model_dir, 1)
        trainer = W2SDPOTrainer(
            model=model, ref_model=reference, args=args, train_dataset=dataset, processing_class=tokenizer
        )
        losses.append(batch_loss(trainer))
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_a_soft_label_weighs_both_readings_of_a_trl_loss(tiny_model_dir, tokenizer, tmp_path):
    """Hinge with labels p: p * hinge(chosen over rejected) + (1 - p) * hinge(rejected over chosen), by hand."""
    soft = [0.9, 0.2, 0.6, 1.0]
    data = pairs(4, soft)
    model, reference = perturbed(policy(tiny_model_dir, 0)), policy(tiny_model_dir, 1)
    args = W2SDPOConfig(output_dir=str(tmp_path), beta=0.5, loss_type="hinge", **COMMON)
    trainer = W2SDPOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer
    )
    logits = hand_logits(model, reference, tokenizer, data, beta=0.5)
    expected = sum((p * max(0.0, 1 - x) + (1 - p) * max(0.0, 1 + x)) / 4 for p, x in zip(soft, logits))
    assert batch_loss(trainer) == pytest.approx(expected, rel=1e-4)


def tiny_moe(vocab_size: int, seed: int):
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(seed)
    config = MixtralConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_local_experts=4,
        num_experts_per_tok=2,
        router_aux_loss_coef=0.5,
        max_position_embeddings=512,
    )
    return MixtralForCausalLM(config)


def test_a_mixture_of_experts_policy_keeps_its_router_loss(tokenizer, tmp_path):
    from trl import DPOConfig, DPOTrainer

    data = pairs(4)
    losses, logged = [], []
    for config, trainer_class in [(DPOConfig, DPOTrainer), (W2SDPOConfig, W2SDPOTrainer)]:
        args = config(output_dir=str(tmp_path / trainer_class.__name__), beta=0.5, bf16=False, **COMMON)
        model, reference = tiny_moe(len(tokenizer), 0), tiny_moe(len(tokenizer), 1)
        trainer = trainer_class(
            model=model, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer
        )
        losses.append(batch_loss(trainer))
        logged.append(trainer._metrics["eval"]["aux_loss"][-1])
    assert logged[1] == pytest.approx(logged[0], rel=1e-5) and logged[1] > 0
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    trainer.args.learning_rate = 0.0
    trainer.train()
    assert "aux_loss" in trainer.state.log_history[0]


def test_trl_metrics_mean_what_trl_means(tiny_model_dir, tokenizer, tmp_path):
    """`rewards/accuracies` is TRL's (chosen above rejected, as stored); agreement with the labels has its own name."""
    data = pairs(4, [0.0, 0.0, 0.0, 0.0])  # every label prefers `rejected`
    model, reference = perturbed(policy(tiny_model_dir, 0)), policy(tiny_model_dir, 1)
    args = W2SDPOConfig(output_dir=str(tmp_path), beta=0.5, **COMMON)
    trainer = W2SDPOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=data, processing_class=tokenizer
    )
    batch_loss(trainer)
    metrics = {key: values[-1] for key, values in trainer._metrics["eval"].items()}
    assert metrics["rewards/accuracies"] == pytest.approx(1 - metrics["label_agreement"])
    for key in ("entropy", "logits/chosen", "logits/rejected", "mean_token_accuracy", "num_tokens"):
        assert key in metrics
    assert metrics["entropy"] > 0 and 0 <= metrics["mean_token_accuracy"] <= 1


def test_an_implicit_prompt_is_split_at_a_word_boundary_as_the_pipeline_splits_it(tiny_model_dir, tokenizer, tmp_path):
    from w2s_align.prompts import split_implicit_prompt  # the pipeline's data sources split by it

    whole = {"chosen": "Human: Hi. Assistant: Surely you know.", "rejected": "Human: Hi. Assistant: Sure, I do."}
    args = W2SDPOConfig(output_dir=str(tmp_path), beta=0.1, **COMMON)
    data = Dataset.from_list([whole] * 4)
    trainer = W2SDPOTrainer(policy(tiny_model_dir), args=args, train_dataset=data, processing_class=tokenizer)
    row = trainer.train_dataset[0]
    assert split_implicit_prompt(**whole)["prompt"] == "Human: Hi. Assistant:"
    assert (
        tokenizer.decode(row["prompt_ids"]) == "Human: Hi. Assistant:"
    )  # TRL's extract_prompt: "... Assistant: Sure"
    assert tokenizer.decode(row["chosen_ids"]).startswith(" Surely you know.")
