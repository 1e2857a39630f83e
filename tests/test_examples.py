"""The examples run as a user would run them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_on_weak_labels_example(tiny_model_dir, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "train_on_weak_labels.py"),
            "--config",
            str(ROOT / "examples" / "weak_labels_reward.yaml"),
            "--model_name_or_path",
            str(tiny_model_dir),
            "--model_init_kwargs",
            "{}",
            "--max_steps",
            "4",
            "--output_dir",
            str(tmp_path / "student"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "agreement with the weak labels" in result.stdout
    assert (tmp_path / "student" / "model.safetensors").is_file()
    assert (tmp_path / "runs" / "example-weak-labels.jsonl").is_file()


@pytest.mark.slow
def test_dpo_on_weak_labels_example(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    policy = tmp_path / "policy-start"  # the tiny GPT-2 as a causal LM, for the LM ladder's rung the config names
    AutoModelForCausalLM.from_pretrained(tiny_model_dir).save_pretrained(policy)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(policy)
    result = subprocess.run(
        [
            sys.executable, str(ROOT / "examples" / "dpo_on_weak_labels.py"),
            "--config", str(ROOT / "examples" / "weak_labels_dpo.yaml"),
            "--model_name_or_path", str(policy), "--max_steps", "4", "--output_dir", str(tmp_path / "policy"),
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "agreement with the weak labels" in result.stdout
    assert (tmp_path / "policy" / "model.safetensors").is_file()


@pytest.mark.slow
def test_the_pipeline_and_analyzer_examples_run_a_recipe_and_read_its_predictions(tiny_recipe, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(json.dumps(tiny_recipe))
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "run_pipeline.py"), str(recipe), "methods=[xent]"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "tiny-l2 <- tiny-l1 (xent)" in run.stdout and f"run directory: {tiny_recipe['output_dir']}" in run.stdout
    keys = ["tiny-l1.gt.seed0", "tiny-l2.gt.seed0", "tiny-l2.from-tiny-l1.xent.seed0"]
    analyze = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "analyze_predictions.py"), tiny_recipe["output_dir"], *keys],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert analyze.returncode == 0, analyze.stderr[-2000:]
    assert "S_k&W_uk" in analyze.stdout and "blind spot S_k & W_uk: error rate" in analyze.stdout
    wrong = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "analyze_predictions.py"), tiny_recipe["output_dir"], "nope"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert wrong.returncode == 1 and "known: " in wrong.stderr and keys[0] in wrong.stderr
