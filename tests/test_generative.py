"""Generative finetuning (Burns et al. section 5.2.2): language modeling on the task's texts before a rung trains."""

import json
from pathlib import Path

import pytest
from datasets import Dataset

from w2s_align.cache import StageCache
from w2s_align.errors import W2SInputError
from w2s_align.generative import check_generative, generative_finetune, language_modeling_loss, task_texts
from w2s_align.models import load_tokenizer
from w2s_align.pipeline import W2SPipeline
from w2s_align.plan_builder import build_plan
from w2s_align.recipe import RungConfig
from w2s_align.recipe_yaml import recipe_from_dict
from w2s_align.specs import CeilingSpec, GenerativeSpec, StudentSpec
from w2s_align.synthetic import generate_pairs
from w2s_align.tracking import Trackers


def test_every_pair_gives_its_prompt_with_each_response():
    pairs = Dataset.from_dict({"prompt": ["P1 ", "P2 "], "chosen": ["a", "c"], "rejected": ["b", "d"]})
    assert task_texts(pairs)["text"] == ["P1 a", "P1 b", "P2 c", "P2 d"]


def test_an_encoder_or_an_adapter_rung_is_refused():
    encoder = RungConfig(name="enc", model="sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(W2SInputError, match="needs a causal language model, and .* is a 'bert' model"):
        check_generative(encoder)


def test_a_lora_rung_is_refused(tiny_model_dir):
    ladder = [{"name": "w", "model": str(tiny_model_dir)}, {"name": "lora", "model": str(tiny_model_dir)}]
    ladder[1]["training"] = {"lora": {"r": 4}}
    recipe = recipe_from_dict({"name": "x", "ladder": ladder, "pairs": [{"weak": "w", "strong": "lora"}]})
    check_generative(recipe.ladder[0])  # the tiny GPT-2 is a causal LM
    with pytest.raises(W2SInputError, match="LoRA or 4-bit rung"):
        check_generative(recipe.ladder[1])


def test_the_plan_finetunes_a_rung_once_a_seed_before_its_ceiling_and_students():
    raw = {
        "name": "gen",
        "output_dir": "unused",
        "seeds": [0, 1],
        "data": {"source": "synthetic", "gt_size": 40, "w2s_size": 30, "test_size": 20},
        "ladder": [{"name": "s", "model": "m"}, {"name": "l", "model": "m", "generative": {"epochs": 1}}],
        "pairs": [{"weak": "s", "strong": "l"}],
    }
    plan = build_plan(recipe_from_dict(raw))
    names = [step.stage_name for step in plan.steps]
    assert [name for name in names if name.startswith("lm-")] == ["lm-l-seed0", "lm-l-seed1"]
    for step in plan.steps:
        if isinstance(step, (CeilingSpec, StudentSpec)) and step.rung.name == "l":
            assert isinstance(step.start, GenerativeSpec) and step.start.seed == step.seed
            assert names.index(step.start.stage_name) < names.index(step.stage_name)
        elif isinstance(step, (CeilingSpec, StudentSpec)):
            assert step.start is None and "start" not in step.upstream()
    # the weak rung's stages keep the hashes they had without the option
    plain = build_plan(recipe_from_dict({**raw, "ladder": [raw["ladder"][0], {"name": "l", "model": "m"}]}))
    cache, other = StageCache("unused"), StageCache("unused")
    assert cache.stage(plan.ceiling("s", 0)).hash == other.stage(plain.ceiling("s", 0)).hash
    assert cache.stage(plan.ceiling("l", 0)).hash != other.stage(plain.ceiling("l", 0)).hash


@pytest.mark.slow
def test_finetuning_lowers_the_language_modeling_loss_on_the_tasks_texts(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    pairs = Dataset.from_list(generate_pairs(64, seed=5))
    rung = RungConfig(name="tiny", model=str(tiny_model_dir))
    rung.training.learning_rate = 3e-3
    rung.generative.epochs = 2
    tokenizer = load_tokenizer(str(tiny_model_dir))
    recipe = recipe_from_dict({"name": "g", "ladder": [{"name": "tiny", "model": str(tiny_model_dir)}], "pairs": []})
    summary = generative_finetune(
        rung, tokenizer, pairs, 0, tmp_path, Trackers.of(recipe.tracking, recipe.name, recipe.run_dir).run("lm", 0)
    )
    assert summary["num_texts"] == 128
    assert summary["lm_loss_after"] < summary["lm_loss_before"] - 0.5
    texts = task_texts(pairs)["text"][:32]
    before = language_modeling_loss(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, texts, 96)
    after = language_modeling_loss(AutoModelForCausalLM.from_pretrained(tmp_path / "model"), tokenizer, texts, 96)
    assert after < before - 0.5
    # a reward model loads from it: the finetuned body and a fresh head
    reward = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model", num_labels=1)
    assert reward.config.num_labels == 1


@pytest.mark.slow
def test_the_pipeline_trains_a_rung_from_its_generatively_finetuned_self(tiny_recipe):
    tiny_recipe["ladder"][1]["generative"] = {"epochs": 1, "learning_rate": 3e-3}
    lines = []
    pipeline = W2SPipeline(recipe_from_dict(tiny_recipe), log=lines.append)
    pipeline.prepare()
    metrics = pipeline.run()
    stages = Path(tiny_recipe["output_dir"], "stages")
    (lm,) = stages.glob("lm-tiny-l2-seed0-*")
    summary = json.loads((lm / "DONE.json").read_text())
    assert summary["num_texts"] == 2 * (48 + 48) and summary["lm_loss_after"] < summary["lm_loss_before"]
    assert not (lm / "checkpoints").exists() and (lm / "model" / "config.json").is_file()
    assert "language modeling of tiny-l2 on the texts of 96 pairs, seed 0" in lines
    for pattern in ("train-tiny-l2-gt-seed0-*", "train-tiny-l2.from-tiny-l1.xent.seed0-*"):
        (stage,) = stages.glob(pattern)
        assert json.loads((stage / "stage.json").read_text())["determinants"]["start"] == lm.name.rsplit("-", 1)[1]
    (weak,) = stages.glob("train-tiny-l1-gt-seed0-*")
    assert "start" not in json.loads((weak / "stage.json").read_text())["determinants"]
    assert set(metrics["models"]) == {
        "tiny-l1.gt.seed0", "tiny-l2.gt.seed0", "tiny-l2.from-tiny-l1.xent.seed0", "tiny-l2.from-tiny-l1.logconf.seed0"
    }  # fmt: skip
