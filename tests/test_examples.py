"""The examples run as a user would run them."""

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
