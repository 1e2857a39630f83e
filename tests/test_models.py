"""Loading rungs (pretrained, truncated or randomly initialised) and tokenizing pairs: long pairs lose the start of
their prompt, and a text is tokenized once per run."""

import pytest
import torch
from transformers import set_seed

from w2s_align.errors import W2SInputError
from w2s_align.models import load_reward_model, load_tokenizer, tokenize_pairs
from w2s_align.recipe import RungConfig
from w2s_align.recipe_yaml import recipe_from_dict
from w2s_align.synthetic import generate_pairs


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


def test_long_pairs_are_truncated_from_the_left_not_dropped(tokenizer):
    pairs = generate_pairs(4, seed=6)
    tokenized = tokenize_pairs(pairs, tokenizer, max_length=12)
    assert tokenized.num_rows == 4
    assert all(len(ids) == 12 for ids in tokenized["chosen_ids"])
    full = tokenize_pairs(pairs, tokenizer, max_length=512)
    assert tokenized["chosen_ids"][0] == full["chosen_ids"][0][-12:]  # the end (the response and eos) is kept


def test_a_split_already_tokenized_is_not_tokenized_again(tokenizer, monkeypatch):
    split = generate_pairs(20, seed=7)
    memo: dict[str, list[int]] = {}
    first = tokenize_pairs(split, tokenizer, 64, memo)
    texts = []
    original = type(tokenizer).__call__

    def counting(self, text, *args, **kwargs):
        texts.extend(text)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", counting)
    # a student's training set: the split with labels, filtered, plus pairs of its own
    student = split.add_column("soft_label", [0.7] * 20).select(range(5, 20))
    extra = generate_pairs(3, seed=8)
    mixed = tokenize_pairs(student, tokenizer, 64, memo)
    assert texts == []
    assert mixed["chosen_ids"] == first["chosen_ids"][5:] and mixed["soft_label"] == [0.7] * 15
    tokenize_pairs(extra, tokenizer, 64, memo)
    assert len(texts) == 6  # only the new pairs' two responses each


def test_a_random_init_rung_has_the_architecture_and_fresh_seeded_weights(tiny_model_dir):
    def weights(rung: RungConfig, seed: int) -> dict[str, torch.Tensor]:
        set_seed(seed)
        return load_reward_model(rung).state_dict()

    pretrained = weights(RungConfig(name="p", model=str(tiny_model_dir), num_layers=1), 0)
    random = RungConfig(name="r", model=str(tiny_model_dir), num_layers=1, random_init=True)
    first, again, other = weights(random, 0), weights(random, 0), weights(random, 1)
    assert first.keys() == pretrained.keys()  # same architecture, the layer count applied
    assert all(torch.equal(first[k], again[k]) for k in first)  # seeded
    name = "transformer.h.0.attn.c_attn.weight"
    assert not torch.equal(first[name], pretrained[name]) and not torch.equal(first[name], other[name])


def test_a_random_init_rung_takes_no_lora():
    ladder = [
        {"name": "a", "model": "m", "random_init": True, "training": {"lora": {"r": 4}}},
        {"name": "b", "model": "m"},
    ]
    with pytest.raises(W2SInputError, match="'ladder.0.random_init' trains every weight"):
        recipe_from_dict({"name": "x", "ladder": ladder})


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU kernels' limit")
def test_4bit_on_a_cpu_refuses_a_model_whose_layers_its_kernels_cannot_pack(tiny_model_dir, wide_model_dir):
    from w2s_align.models import check_rung_loads
    from w2s_align.recipe import LoraSettings, TrainingSettings

    qlora = TrainingSettings(lora=LoraSettings(r=4), load_in_4bit=True, max_length=96)
    with pytest.raises(W2SInputError, match="load_in_4bit on a CPU needs every layer's input width to be a multiple"):
        check_rung_loads(RungConfig(name="narrow", model=str(tiny_model_dir), training=qlora))  # 32 wide
    assert check_rung_loads(RungConfig(name="wide", model=str(wide_model_dir), training=qlora)) == 0  # 64: trains
