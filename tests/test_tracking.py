"""Experiment tracking: one TensorBoard run per trained stage, grouped by seed, the results at the end; no stage hash
depends on tracking or other result-neutral settings; bad tracker names stop before training."""

from pathlib import Path

import pytest

from w2s_align.cache import StageCache
from w2s_align.cli import main
from w2s_align.pipeline import W2SPipeline
from w2s_align.plan_builder import build_plan
from w2s_align.recipe_yaml import recipe_from_dict


def _events(directory: Path) -> dict[str, list]:
    """Scalars and texts of the TensorBoard event files in `directory`: tag -> values."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory))
    accumulator.Reload()
    tags = accumulator.Tags()
    found = {tag: [event.value for event in accumulator.Scalars(tag)] for tag in tags["scalars"]}
    found.update({tag: [] for tag in tags["tensors"] + tags["images"]})  # texts and figures
    return found


def _stage_keys(raw: dict) -> list[str]:
    recipe = recipe_from_dict(raw)
    cache = StageCache(recipe.run_dir)
    return [cache.stage(step).dir.name for step in build_plan(recipe).steps]


def test_tracking_and_result_neutral_trainer_settings_change_no_stage_hash(tiny_recipe):
    before = _stage_keys(tiny_recipe)
    tiny_recipe["tracking"] = {"report_to": ["tensorboard"], "project": "elsewhere"}
    tiny_recipe["hub"] = {"push": ["students", "labels"], "namespace": "me"}
    tiny_recipe["training"]["trainer_kwargs"] = {"logging_steps": 1, "save_steps": 2, "dataloader_num_workers": 1}
    tiny_recipe["training"]["logging_steps"] = 3
    assert _stage_keys(tiny_recipe) == before
    tiny_recipe["training"]["trainer_kwargs"]["max_grad_norm"] = 0.5  # changes what is learned
    assert all(new != old for new, old in zip(_stage_keys(tiny_recipe), before) if new.startswith("train-"))


@pytest.mark.slow
def test_tensorboard_runs_per_stage_grouped_by_seed_and_the_results_at_the_end(tiny_recipe):
    pytest.importorskip("tensorboard")
    tiny_recipe.update(methods=["xent"], tracking={"report_to": ["tensorboard"]})
    W2SPipeline(recipe_from_dict(tiny_recipe), log=lambda line: None).run()
    tracking = Path(tiny_recipe["output_dir"]) / "tracking"
    runs = sorted(path.name for path in (tracking / "seed0").iterdir())
    assert runs == ["train-tiny-l1-gt-seed0", "train-tiny-l2-gt-seed0", "train-tiny-l2.from-tiny-l1.xent.seed0"]
    student = _events(tracking / "seed0" / "train-tiny-l2.from-tiny-l1.xent.seed0")
    assert len(student["train/loss"]) == 6  # 48 pairs / batch 8: the default logs every 5% of a stage, so every step
    assert "train/label_agreement" in student
    results = _events(tracking / "results" / "tiny")
    assert "accuracy/tiny-l2 (ground truth) seed0" in results and "gap/tiny-l2 <- tiny-l1 (xent)" in results
    # the tiny ceilings' gap is within noise: the report shows no PGR, nor does the dashboard
    assert "gap within noise" in (Path(tiny_recipe["output_dir"]) / "report.md").read_text()
    assert "pgr/tiny-l2 <- tiny-l1 (xent)" not in results
    assert "report/text_summary" in results
    figures = {path.stem for path in (Path(tiny_recipe["output_dir"]) / "plots").glob("*.png")}
    assert figures and figures <= set(results), "every figure of the report is logged as an image"
    curves = {
        f"training/{path.stem}" for path in (Path(tiny_recipe["output_dir"]) / "plots" / "training").glob("*.png")
    }
    assert len(curves) == 3 and curves <= set(results), "and every model's training curves"
    # a rerun retrains nothing and logs nothing again: one point per result, one run of hyperparameters
    logged = sorted(path.name for path in (tracking / "results").rglob("*") if path.is_file())
    W2SPipeline(recipe_from_dict(tiny_recipe), log=lambda line: None).run()
    assert sorted(path.name for path in (tracking / "results").rglob("*") if path.is_file()) == logged
    assert (
        _events(tracking / "results" / "tiny")["student_accuracy/tiny-l2 <- tiny-l1 (xent)"]
        == results["student_accuracy/tiny-l2 <- tiny-l1 (xent)"]
    )
    assert len(results["student_accuracy/tiny-l2 <- tiny-l1 (xent)"]) == 1


def test_a_tracker_that_does_not_exist_stops_the_run_before_training(tiny_recipe, tmp_path, capsys):
    import yaml

    tiny_recipe["tracking"] = {"report_to": ["tensorbored"]}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: tracking.report_to: 'tensorbored' is not a transformers integration; known: ")
    assert not list((Path(tiny_recipe["output_dir"]) / "stages").glob("train-*")), "nothing may train"


def test_trainer_kwargs_may_not_set_what_tracking_owns(tiny_recipe, tmp_path, capsys):
    import yaml

    tiny_recipe["training"]["trainer_kwargs"] = {"report_to": ["wandb"]}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(path)]) == 2
    assert "training.trainer_kwargs.report_to is set by tracking.report_to" in capsys.readouterr().err


def test_the_trackers_local_files_stay_in_the_run_directory(tiny_recipe, monkeypatch):
    import os

    from w2s_align.tracking import Trackers

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    recipe = recipe_from_dict(tiny_recipe)
    run_dir = recipe.run_dir.absolute()
    with Trackers.of(recipe.tracking, recipe.name, recipe.run_dir).run("train-x", 0).active():
        assert Path(os.environ["WANDB_DIR"]).absolute().is_relative_to(run_dir)
        assert os.environ["MLFLOW_TRACKING_URI"].startswith(run_dir.as_uri())
    assert "WANDB_DIR" not in os.environ  # restored
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")  # a server the user named is kept
    with Trackers.of(recipe.tracking, recipe.name, recipe.run_dir).run("train-x", 0).active():
        assert os.environ["MLFLOW_TRACKING_URI"] == "http://tracking.example:5000"


def test_a_pgr_the_report_does_not_show_is_not_logged():
    from w2s_align.tracking import _scalars

    rows = [
        {"label": "s (xent)", "student_accuracy": 0.7, "gap": 0.1, "pgr": 0.5, "gap_within_noise": False},
        {"label": "s (logconf)", "student_accuracy": 0.6, "gap": 0.01, "pgr": 3.0, "gap_within_noise": True},
    ]
    scalars = _scalars({"models": {}, "students": rows})
    assert scalars["pgr/s (xent)"] == 0.5 and "pgr/s (logconf)" not in scalars  # "gap within noise" in the report
    assert scalars["gap/s (logconf)"] == 0.01 and scalars["student_accuracy/s (logconf)"] == 0.6
