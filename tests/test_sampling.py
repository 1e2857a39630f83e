"""Length-grouped batches: every pair once per epoch, orders drawn from the seed and the epoch, little padding, and
the trainers' data loaders built on them."""

import random

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from w2s_align import W2SDPOConfig, W2SDPOTrainer, W2SRewardConfig, W2SRewardTrainer
from w2s_align.models import load_tokenizer
from w2s_align.sampling import PairLengthGroupedSampler, length_order, pair_lengths
from w2s_align.synthetic import generate_pairs


def skewed_lengths(n: int, seed: int = 0) -> list[int]:
    """Lengths like single-turn HH-RLHF: mostly short, a long tail."""
    rng = random.Random(seed)
    return [min(int(rng.lognormvariate(3.8, 0.5)), 128) for _ in range(n)]


def batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def padding(lengths: list[int], order: list[int], size: int) -> float:
    """Fraction of a padded batch's tokens that are padding, over the epoch."""
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches(order, size))
    return 1 - sum(lengths) / padded


@pytest.mark.parametrize(("n", "batch_size"), [(1000, 16), (997, 16), (40, 8), (5, 8)])
def test_every_pair_once_per_epoch_and_only_the_last_batch_short(n, batch_size):
    lengths = skewed_lengths(n)
    sampler = PairLengthGroupedSampler(lengths, batch_size, seed=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(n)) and len(sampler) == n
        cut = batches(order, batch_size)
        assert all(len(batch) == batch_size for batch in cut[:-1])


def test_orders_follow_the_seed_and_the_epoch():
    lengths = skewed_lengths(1000)
    first = list(PairLengthGroupedSampler(lengths, 16, seed=0))
    assert first == list(PairLengthGroupedSampler(lengths, 16, seed=0))  # a resumed run sees the same order
    assert first != list(PairLengthGroupedSampler(lengths, 16, seed=1))
    sampler = PairLengthGroupedSampler(lengths, 16, seed=0)
    sampler.set_epoch(1)
    assert list(sampler) != first
    # not a fixed curriculum either: which pairs share a batch changes with the seed
    together = {frozenset(batch) for batch in batches(first, 16)}
    other = {frozenset(batch) for batch in batches(list(PairLengthGroupedSampler(lengths, 16, seed=1)), 16)}
    assert len(together & other) < len(together) / 10


def test_grouped_batches_carry_far_less_padding_than_random_ones():
    lengths = skewed_lengths(1000)
    grouped = padding(lengths, list(PairLengthGroupedSampler(lengths, 16, seed=0)), 16)
    shuffled = list(range(1000))
    random.Random(0).shuffle(shuffled)
    assert padding(lengths, shuffled, 16) > 0.4 and grouped < 0.1  # 0.52 and 0.08 here
    order = list(PairLengthGroupedSampler(lengths, 16, seed=0))
    assert max(lengths[i] for i in order[:16]) == max(lengths)  # the longest batch first: out of memory shows early


def test_a_pair_is_as_long_as_its_longer_sequence():
    pairs = Dataset.from_dict(
        {"chosen_ids": [[1, 2, 3], [1], [1, 2]], "rejected_ids": [[1], [1, 2, 3, 4], [1, 2]], "prompt_ids": [[9]] * 3}
    )
    assert pair_lengths(pairs.select([2, 0, 1])) == [3, 4, 5]
    assert pair_lengths(pairs.remove_columns("prompt_ids")) == [3, 4, 2]


def _visited(trainer) -> list[tuple[float, int]]:
    """(soft label, padded length) of every pair the trainer's data loader yields in one epoch."""
    out = []
    for batch in trainer.get_train_dataloader():
        out += [(round(label, 4), batch["input_ids"].shape[1]) for label in batch["soft_label"].tolist()]
    return out


def test_the_reward_trainer_batches_pairs_of_similar_length(tiny_model_dir, tmp_path):
    data = generate_pairs(96, seed=0).select_columns(["prompt", "chosen", "rejected"])
    data = data.add_column("soft_label", [(i + 1) / 100 for i in range(96)])  # tells the pairs apart
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    visited = {}
    for strategy in ("group_by_length", "random"):
        args = W2SRewardConfig(
            str(tmp_path), train_sampling_strategy=strategy, report_to=[], per_device_train_batch_size=8
        )
        trainer = W2SRewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
        visited[strategy] = _visited(trainer)
    assert W2SRewardConfig(str(tmp_path)).train_sampling_strategy == "random"  # TRL's default; grouping opts in
    for seen in visited.values():
        assert sorted(label for label, _ in seen) == [round((i + 1) / 100, 4) for i in range(96)]
    padded = {strategy: sum(length for _, length in seen) for strategy, seen in visited.items()}
    assert padded["group_by_length"] < padded["random"]


def _dpo_trainer(
    model_dir, output_dir, data, precompute_ref_log_probs: bool, strategy: str = "group_by_length", **kwargs
) -> W2SDPOTrainer:
    args = W2SDPOConfig(
        str(output_dir),
        report_to=[],
        per_device_train_batch_size=8,
        precompute_ref_log_probs=precompute_ref_log_probs,
        train_sampling_strategy=strategy,
        bf16=False,
    )
    return W2SDPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=args,
        train_dataset=data,
        processing_class=load_tokenizer(str(model_dir)),
        **kwargs,
    )


def test_the_dpo_trainer_groups_by_prompt_plus_longer_response(tiny_model_dir, tmp_path):
    data = generate_pairs(64, seed=2).select_columns(["prompt", "chosen", "rejected"])
    data = data.add_column("soft_label", [(i + 1) / 100 for i in range(64)])
    torch.manual_seed(0)
    trainer = _dpo_trainer(tiny_model_dir, tmp_path, data, precompute_ref_log_probs=False)
    seen = _visited(trainer)
    assert sorted(label for label, _ in seen) == [round((i + 1) / 100, 4) for i in range(64)]
    lengths = pair_lengths(trainer.train_dataset)
    assert max(lengths) == max(length for _, length in seen)  # a batch is as long as its longest prompt+response


def test_precomputing_the_reference_keeps_the_datasets_order(tiny_model_dir, tmp_path):
    data = generate_pairs(24, seed=3).select_columns(["prompt", "chosen", "rejected"])
    trainer = _dpo_trainer(tiny_model_dir, tmp_path, data, precompute_ref_log_probs=True)
    lengths = pair_lengths(trainer.train_dataset)
    assert len(set(lengths)) > 3 and lengths != sorted(lengths, reverse=True)
    assert trainer.train_dataset["prompt"] == data["prompt"]  # TRL keeps the text columns beside the token ids
    assert "ref_chosen_logps" in trainer.train_dataset.column_names


def test_with_a_precomputed_reference_the_grouped_batches_are_those_of_the_pairs_sorted_by_length(
    tiny_model_dir, tmp_path
):
    """The batches the pipeline's cached DPO stages were trained on: earlier versions held the pairs sorted by length
    once the reference was scored, and the grouped sampler shuffled them from there. Whatever order the trainer keeps
    the pairs in, it draws those batches."""
    data = generate_pairs(40, seed=4).select_columns(["prompt", "chosen", "rejected"])
    data = data.add_column("soft_label", [(i + 1) / 100 for i in range(40)])  # tells the pairs apart
    lengths = pair_lengths(_dpo_trainer(tiny_model_dir, tmp_path / "a", data, False).train_dataset)
    presorted = data.select(length_order(lengths))
    seen = [
        _visited(_dpo_trainer(tiny_model_dir, tmp_path / name, pairs, precompute_ref_log_probs=True))
        for name, pairs in (("b", data), ("c", presorted))
    ]
    assert seen[0] == seen[1] and [label for label, _ in seen[0]] != sorted(label for label, _ in seen[0])


def _rewards(trainer, dataset):
    """The rewards `predict()` returns, one row per response, each batch's chosen rows then its rejected ones."""
    return trainer.predict(dataset).predictions.reshape(-1).tolist()


def test_predict_and_evaluation_return_the_rows_in_the_datasets_order_whatever_the_sampler(tiny_model_dir, tmp_path):
    """As TRL's RewardTrainer returns them: the same rewards from the same weights, with length grouping too."""
    from trl import RewardConfig, RewardTrainer

    data = generate_pairs(20, seed=5).select_columns(["prompt", "chosen", "rejected"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    common = dict(report_to=[], per_device_eval_batch_size=4, bf16=False)
    trl = RewardTrainer(
        model=model, args=RewardConfig(str(tmp_path / "trl"), **common), train_dataset=data, processing_class=tokenizer
    )
    expected = _rewards(trl, trl.train_dataset)
    for strategy in ("group_by_length", "random", "sequential"):
        args = W2SRewardConfig(str(tmp_path / strategy), train_sampling_strategy=strategy, **common)
        ours = W2SRewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
        assert _rewards(ours, ours.train_dataset) == pytest.approx(expected, abs=1e-6), strategy
        assert list(ours.get_eval_dataloader(ours.train_dataset).sampler) == list(range(20))


def test_dpo_predictions_come_in_the_datasets_order_whatever_the_sampler(tiny_model_dir, tmp_path):
    data = generate_pairs(12, seed=6).select_columns(["prompt", "chosen", "rejected"])
    predictions = {}
    for strategy in ("group_by_length", "random"):
        torch.manual_seed(0)
        trainer = _dpo_trainer(tiny_model_dir, tmp_path / strategy, data, False, strategy, eval_dataset=data)
        predictions[strategy] = trainer.predict(trainer.eval_dataset).predictions
    assert predictions["group_by_length"] == pytest.approx(predictions["random"], abs=1e-6)


def test_a_dataset_without_token_ids_trains_in_random_batches_and_is_not_grouped_by_length(tiny_model_dir, tmp_path):
    """A vision dataset reaches the sampler untokenized (TRL's collator tokenizes each batch): TRL's random batches by
    default, and a refusal in one line where length grouping is asked for."""
    images = Dataset.from_dict(
        {"images": [[[0, 0]]] * 4, "prompt": ["p"] * 4, "chosen": ["a"] * 4, "rejected": ["b"] * 4}
    )
    data = generate_pairs(8, seed=0).select_columns(["prompt", "chosen", "rejected"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    for strategy in ("random", "group_by_length"):
        args = W2SRewardConfig(str(tmp_path), train_sampling_strategy=strategy, report_to=[], bf16=False)
        trainer = W2SRewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
        if strategy == "random":
            assert isinstance(trainer._get_train_sampler(images), torch.utils.data.RandomSampler)
        else:
            with pytest.raises(ValueError, match="has none .* use 'random', TRL's default") as refused:
                trainer._get_train_sampler(images)
            assert len(str(refused.value).splitlines()) == 1
