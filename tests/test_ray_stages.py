"""`w2s-align run --executor ray`: the plan's stages as Ray tasks on a local instance give the sequential run's
results; a failed stage stops the stages that read it with one line, and a rerun resumes from the stage cache."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from datasets import Dataset

from w2s_align.cli import main
from w2s_align.pipeline import W2SPipeline
from w2s_align.recipe_yaml import recipe_from_dict

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]
ray = pytest.importorskip("ray", reason="Ray is an optional extra (w2s_align[ray])")


def _margins(run_dir: Path) -> dict[str, np.ndarray]:
    return {
        path.stem: np.asarray(Dataset.from_parquet(str(path))["margin"])
        for path in sorted((run_dir / "predictions").glob("*.parquet"))
    }


def test_ray_gives_the_sequential_runs_results(tiny_recipe, tmp_path, capsys):
    tiny_recipe["analysis"] = {"n_bootstrap": 20}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(tmp_path / "recipe.yaml"), "--executor", "ray"]) == 0
    out = capsys.readouterr().out
    assert "tiny-l2 <- tiny-l1 (logconf), seed 0: test accuracy" in out  # each stage's lines, named, when it ends
    sequential = {**tiny_recipe, "output_dir": str(tmp_path / "sequential")}
    W2SPipeline(recipe_from_dict(sequential), log=lambda _: None).run()
    ray_margins, expected = _margins(Path(tiny_recipe["output_dir"])), _margins(tmp_path / "sequential")
    assert ray_margins.keys() == expected.keys()
    for key, values in expected.items():  # one thread per task against two: the rounding of sums, nothing else
        assert np.abs(ray_margins[key] - values).max() < 1e-4, key


def test_a_failed_stage_stops_the_stages_that_read_it_and_a_rerun_resumes(
    tiny_recipe, tiny_model_dir, tmp_path, capsys, monkeypatch
):
    weak = tmp_path / "weak-model"
    shutil.copytree(tiny_model_dir, weak)
    weights = weak / "model.safetensors"
    intact = weights.read_bytes()
    prepare = W2SPipeline._prepare

    def prepare_then_lose_the_weights(
        self, cut
    ):  # a fault after the checks: the weak ceiling's stage fails in its task
        splits = prepare(self, cut)
        weights.write_bytes(intact[: len(intact) // 2])
        return splits

    monkeypatch.setattr(W2SPipeline, "_prepare", prepare_then_lose_the_weights)
    tiny_recipe["ladder"][0]["model"] = str(weak)
    tiny_recipe["methods"] = ["xent"]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(tmp_path / "recipe.yaml"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and "error: stage train-tiny-l1-gt-seed0 failed: SafetensorError" in err
    stages = Path(tiny_recipe["output_dir"]) / "stages"
    assert list(stages.glob("train-tiny-l2-gt-seed0-*/DONE.json"))  # independent of it: finished and kept
    assert not list(stages.glob("labels-*/DONE.json")) and not list(stages.glob("train-*.from-*"))
    monkeypatch.undo()
    weights.write_bytes(intact)
    assert main(["run", str(tmp_path / "recipe.yaml"), "--executor", "ray"]) == 0
    out = capsys.readouterr().out
    assert "training tiny-l2 (ground truth)" not in out  # resumed from the stage cache
    assert "tiny-l2 <- tiny-l1 (xent), seed 0: test accuracy" in out
