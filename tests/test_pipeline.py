"""End to end: a tiny recipe through the pipeline, its artifacts, caching, resume after a crash, determinism."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from datasets import Dataset

from w2s_align.analysis.metrics import pgr
from w2s_align.pipeline import W2SPipeline
from w2s_align.recipe_yaml import recipe_from_dict
from w2s_align.reward_trainer import W2SRewardTrainer

pytestmark = pytest.mark.slow  # every test here trains models through the pipeline

MODELS = [
    "tiny-l1.gt.seed0",
    "tiny-l2.gt.seed0",
    "tiny-l2.from-tiny-l1.xent.seed0",
    "tiny-l2.from-tiny-l1.logconf.seed0",
]


def run(raw, lines=None):
    lines = [] if lines is None else lines
    metrics = W2SPipeline(recipe_from_dict(raw), log=lines.append).run()
    return metrics, lines


def test_tiny_recipe_end_to_end(tiny_recipe):
    metrics, lines = run(tiny_recipe)
    run_dir = tiny_recipe["output_dir"]

    run_dir = Path(run_dir)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["name"] == "tiny"
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert set(saved["models"]) == set(MODELS)
    assert saved["n_test"] == 40
    for key in MODELS:
        predictions = Dataset.from_parquet(str(run_dir / "predictions" / f"{key}.parquet"))
        assert predictions.num_rows == 40
        assert {"id", "reward_chosen", "reward_rejected", "margin", "prob_chosen", "correct", "kind"} <= set(
            predictions.column_names
        )
        margin = np.asarray(predictions["reward_chosen"]) - np.asarray(predictions["reward_rejected"])
        assert np.allclose(margin, predictions["margin"], atol=1e-5)
        assert list(predictions["correct"]) == list(margin > 0)
        assert saved["models"][key]["accuracy"] == pytest.approx(float(np.mean(predictions["correct"])))
    rows = {row["method"]: row for row in saved["students"]}
    assert set(rows) == {"xent", "logconf"}
    for row in rows.values():
        expected = pgr(row["weak_accuracy"], row["strong_accuracy"], row["student_accuracy"], 1 / 40)
        assert row["pgr"] == (pytest.approx(expected) if expected is not None else None)
    (label_file,) = (run_dir / "labels" / "tiny-l1.seed0" / "data").glob("w2s-*-00000-of-00001.parquet")
    labels = Dataset.from_parquet(str(label_file))
    assert labels.num_rows == 48
    assert all(0.0 < p < 1.0 for p in labels["soft_label"])
    assert labels["labeler"][0].startswith("tiny-l1.seed0@train-tiny-l1-gt-seed0-")
    report = (run_dir / "report.md").read_text()
    assert "## Performance gap recovered" in report and "| tiny-l2 <- tiny-l1 (logconf) |" in report
    (student,) = (run_dir / "stages").glob("train-tiny-l2.from-tiny-l1.xent.seed0-*")
    card = (student / "model" / "README.md").read_text()
    assert "W2S Reward" in card and "2312.09390" in card and "yang2025superficial" in card  # TRL's card, cited
    accuracy = saved["models"]["tiny-l2.from-tiny-l1.xent.seed0"]["accuracy"]
    assert f"- Test accuracy: {accuracy:.4f} on 40 pairs" in card
    assert "- Trained on the labels of: `tiny-l1.gt.seed0`" in card
    assert f"- Model: tiny-l2 <- tiny-l1 (xent), seed 0, from `{tiny_recipe['ladder'][1]['model']}`\n" in card
    label_card = (run_dir / "labels" / "tiny-l1.seed0" / "README.md").read_text()
    assert "- recipe: `tiny`" in label_card and "- split: `w2s`" in label_card and "- stage hash: `" in label_card
    console = "\n".join(lines)
    assert "tiny-l2 <- tiny-l1 (xent)" in console and "tiny-l2 <- tiny-l1 (logconf)" in console


def test_rerun_skips_finished_stages_and_gives_the_same_metrics(tiny_recipe, tmp_path):
    import subprocess
    import sys

    first, _ = run(tiny_recipe)
    (report,) = (Path(tiny_recipe["output_dir"]) / "stages").glob("report-*")
    computed = (report / "metrics.json").stat().st_mtime_ns
    second, lines = run(tiny_recipe)
    assert not [line for line in lines if line.startswith(("training", "labeling"))]
    first.pop("wall_seconds"), second.pop("wall_seconds")
    assert first == second
    assert (report / "metrics.json").stat().st_mtime_ns == computed  # the bootstrap is not redone
    # a rerun from the command line needs neither TRL's trainers nor the plotting library
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(tiny_recipe))
    code = (
        "import sys; from w2s_align.cli import main; code = main(['run', sys.argv[1]]);"
        "print(sorted(m for m in ('trl.trainer.reward_trainer', 'matplotlib.pyplot') if m in sys.modules))"
    )
    command = [sys.executable, "-c", code, str(tmp_path / "recipe.yaml")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_new_method_trains_only_the_new_student(tiny_recipe):
    run(tiny_recipe)
    tiny_recipe["methods"] = ["xent", "logconf", "product", "window", "min_entropy", "kl"]
    metrics, lines = run(tiny_recipe)
    trained = [line for line in lines if line.startswith(("training", "labeling"))]
    new = ("product", "window", "min_entropy", "kl")
    assert trained == [f"training tiny-l2 <- tiny-l1 ({method}), seed 0" for method in new]
    for method in new:  # each reported as a student of its own, its loss settings in its stage's key
        assert f"tiny-l2.from-tiny-l1.{method}.seed0" in metrics["models"]
    (window,) = Path(tiny_recipe["output_dir"], "stages").glob("train-tiny-l2.from-tiny-l1.window.seed0-*")
    assert json.loads((window / "stage.json").read_text())["determinants"]["loss"] == {
        "soft_label_mode": "smoothing",
        "window_radius": 0.15,
    }


def test_same_seed_same_splits_and_metrics(tiny_recipe, tmp_path):
    first, _ = run(tiny_recipe)
    tiny_recipe["output_dir"] = str(tmp_path / "again")
    second, _ = run(tiny_recipe)
    for key in MODELS:
        assert first["models"][key]["accuracy"] == second["models"][key]["accuracy"]
    assert [row["pgr"] for row in first["students"]] == [row["pgr"] for row in second["students"]]


def test_a_run_killed_mid_training_resumes_from_its_last_whole_checkpoint(tiny_recipe, tmp_path, monkeypatch):

    tiny_recipe["methods"] = ["logconf"]
    # Two checkpoints kept (the pipeline keeps one), as a kill mid-save leaves them: the last whole one, the new one.
    tiny_recipe["ladder"][1]["training"] = {"trainer_kwargs": {"save_steps": 2, "save_total_limit": 2}}
    original = W2SRewardTrainer.compute_loss

    def crash_at_step_5(self, model, inputs, *args, **kwargs):
        if self.args.student_loss == "logconf" and self.state.global_step == 5 and model.training:
            raise KeyboardInterrupt("killed")
        return original(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(W2SRewardTrainer, "compute_loss", crash_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_recipe)
    stages = Path(tiny_recipe["output_dir"]) / "stages"
    (student,) = stages.glob("train-tiny-l2.from-tiny-l1.logconf.seed0-*")
    assert not (student / "DONE.json").exists()
    assert sorted(path.name for path in (student / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]
    assert not (student / "predictions.parquet").exists()
    # As if killed while checkpoint-4 was being written: transformers writes trainer_state.json last.
    (student / "checkpoints" / "checkpoint-4" / "trainer_state.json").unlink()

    monkeypatch.setattr(W2SRewardTrainer, "compute_loss", original)
    metrics, lines = run(tiny_recipe)
    assert [line for line in lines if line.startswith("training")] == ["training tiny-l2 <- tiny-l1 (logconf), seed 0"]
    assert any(line.endswith(f"resuming from {student / 'checkpoints' / 'checkpoint-2'}") for line in lines), lines
    log = json.loads((student / "train_log.json").read_text())
    assert log[-1]["step"] == 6  # 48 pairs / 8 per step, one epoch: finished, not restarted
    assert (student / "DONE.json").exists() and not (student / "checkpoints").exists()
    # The same predictions as a run that was never killed.
    tiny_recipe["output_dir"] = str(tmp_path / "unbroken")
    unbroken, _ = run(tiny_recipe)
    key = "tiny-l2.from-tiny-l1.logconf.seed0"
    resumed = Dataset.from_parquet(str(student / "predictions.parquet"))
    (unbroken_stage,) = (tmp_path / "unbroken" / "stages").glob(f"{student.name}")
    assert resumed["margin"] == Dataset.from_parquet(str(unbroken_stage / "predictions.parquet"))["margin"]
    assert metrics["models"][key]["accuracy"] == unbroken["models"][key]["accuracy"]


def test_a_full_disk_mid_training_stops_with_one_line_and_the_rerun_trusts_nothing_it_cut_short(
    tiny_recipe, tmp_path, monkeypatch, capsys
):
    import shutil

    from transformers import Trainer

    from w2s_align.cli import main

    tiny_recipe["methods"] = ["xent"]
    tiny_recipe["ladder"][1]["training"] = {"trainer_kwargs": {"save_steps": 2}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    disk_usage, save, full = shutil.disk_usage, Trainer._save_optimizer_and_scheduler, []

    def fill_the_disk(self, output_dir):  # as torch's writer fails on a full disk: the optimizer's file cut short
        if "train-tiny-l2-gt" not in output_dir:  # the weak ceiling saves (at its end) before the disk is full
            return save(self, output_dir)
        Path(output_dir, "optimizer.pt").write_bytes(b"PK\x03\x04")
        full.append(output_dir)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 6976 vs 6868")

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", fill_the_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda where: disk_usage(where)._replace(free=0 if full else 2**40))
    assert main(["run", str(path), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the disk is full (0 MiB free), the likely cause of: [enforce fail" in err, err
    assert err.rstrip().endswith(
        "run it again to resume (finished stages are kept; training resumes from its last checkpoint)"
    )
    stages = Path(tiny_recipe["output_dir"]) / "stages"
    (weak,) = stages.glob("train-tiny-l1-gt-seed0-*")
    (strong,) = stages.glob("train-tiny-l2-gt-seed0-*")
    assert (weak / "DONE.json").exists() and not (strong / "DONE.json").exists()
    assert [Path(full[0]).name] == [p.name for p in (strong / "checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]

    monkeypatch.undo()
    assert main(["run", str(path), "-q"]) == 0
    assert (strong / "DONE.json").exists()
    # The cut-short checkpoint was not resumed from: the same predictions as a run that never met a full disk.
    tiny_recipe["output_dir"] = str(tmp_path / "unbroken")
    run(tiny_recipe)
    for key in ("tiny-l2.gt.seed0", "tiny-l2.from-tiny-l1.xent.seed0"):
        again = Dataset.from_parquet(str(stages.parent / "predictions" / f"{key}.parquet"))["margin"]
        assert again == Dataset.from_parquet(str(tmp_path / "unbroken" / "predictions" / f"{key}.parquet"))["margin"]


def test_a_confidence_filter_that_keeps_too_few_labels_stops_with_one_line_keeping_the_teacher(
    tiny_recipe, tmp_path, capsys
):
    from w2s_align.cli import main

    tiny_recipe.update(methods=["xent"], label_filters=["confidence"], filter_threshold=0.99, controls=False)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    assert main(["run", str(path), "-q"]) == 2  # found once the teacher has labelled: no model says so before
    err = capsys.readouterr().err
    assert err.startswith("error: filter_threshold 0.99: the confidence filter keeps ") and err.count("\n") == 1, err
    assert "weak labels of tiny-l1.gt.seed0, and " in err and "fill no optimizer step of 8 pairs" in err
    assert err.rstrip().endswith("lower filter_threshold and run again (the finished stages are kept)")
    stages = Path(tiny_recipe["output_dir"]) / "stages"
    for name in ("train-tiny-l1-gt-seed0-*", "labels-tiny-l1.seed0-*"):
        (stage,) = stages.glob(name)
        assert (stage / "DONE.json").exists()


def test_conflicts_filters_and_bootstrapping_end_to_end(tiny_recipe):

    tiny_recipe["ladder"].insert(1, {"name": "tiny-mid", "model": tiny_recipe["ladder"][0]["model"], "num_layers": 2})
    tiny_recipe["pairs"] = [
        {"weak": "tiny-l1", "strong": "tiny-l2", "label_filters": ["none", "confidence", "oracle"]},
        {"weak": "tiny-l1", "strong": "tiny-l2", "via": ["tiny-mid"]},
    ]
    tiny_recipe["methods"] = ["xent"]
    tiny_recipe["filter_threshold"] = 0.5  # every label passes the honest filter: the tiny teacher is unconfident
    tiny_recipe["conflicts"] = {"settings": ["none", "explicit", "implicit"], "alphas": [0.5], "ratios": [1.0]}
    tiny_recipe["analysis"] = {"n_bootstrap": 100}
    tiny_recipe["controls"] = False  # the controls have a test of their own
    metrics, lines = run(tiny_recipe)
    console = "\n".join(lines)
    assert "    deception beyond imitation: no control" in console
    assert "    teacher-aligned error added by the conflict: no control" in console
    labels = {row["label"] for row in metrics["students"]}
    assert labels == {
        f"tiny-l2 <- tiny-l1{via} (xent{conflict}{filt})"
        for via, filters in (("", ("", ", confidence filter", ", oracle filter")), (" -> tiny-mid", ("",)))
        for conflict in ("", ", explicit-0.5", ", implicit-1")
        for filt in filters
    }
    run_dir = Path(tiny_recipe["output_dir"])
    assert (run_dir / "predictions" / "tiny-l2.from-tiny-l1.xent.implicit-1.seed0.parquet").is_file()
    # the intermediate teacher trained on the w2s split's weak labels, so it labels the ground-truth split
    (middle_file,) = (run_dir / "labels" / "tiny-mid.from-tiny-l1.xent.seed0" / "data").glob("gt-*.parquet")
    middle = Dataset.from_parquet(str(middle_file))
    (data_stage,) = (run_dir / "stages").glob("data-*")
    splits = {name: set(Dataset.from_parquet(str(data_stage / f"{name}.parquet"))["id"]) for name in ("gt", "w2s")}
    assert set(middle["id"]) == splits["gt"] and not set(middle["id"]) & splits["w2s"]
    for name in ("deception_vs_gap.png", "area_heatmap.png"):
        assert (run_dir / "plots" / name).stat().st_size > 1000
    # PGR is plotted only where the ceiling gap is beyond noise, which 40 test pairs rarely give
    measurable = [
        row for row in metrics["students"] if not row["gap_within_noise"] and row["pgr_ci"]["value"] is not None
    ]
    assert (run_dir / "plots" / "pgr_vs_gap.png").is_file() == bool(measurable)
    noisy = [row["label"] for row in metrics["students"] if row["gap_within_noise"]]
    console = "\n".join(lines).splitlines()
    printed = [line for line in console if "gap within noise" in line and "[CI]" not in line and "    - " not in line]
    assert len(printed) == len(noisy)  # such a PGR is not printed as a number
    differences = [line for line in console if line.startswith("    - ")]
    # the students share one ceiling gap: within noise for all of them or for none
    assert len(differences) == 9 and all(("; PGR gap within noise" in line) == bool(noisy) for line in differences)
    report = (run_dir / "report.md").read_text()
    assert (
        "## Deception" in report
        and "![DS paper (descriptive) vs capability gap](plots/deception_vs_gap.png)" in report
    )
    rows = {row["label"]: row for row in metrics["students"]}
    explicit = rows["tiny-l2 <- tiny-l1 (xent, explicit-0.5)"]
    assert "conflict_mistakes.all" in explicit["deception"]
    assert "conflict_mistakes.all" not in rows["tiny-l2 <- tiny-l1 (xent)"]["deception"]
    # the paper's Deception Score is the blind spot's cell of the table: undefined exactly when the cell is empty
    blind = explicit["table"]["S_k&W_uk"]
    assert explicit["ds_paper"] == {key: value for key, value in blind.items() if key != "n"}
    assert (blind["value"] is None) == (blind["n"] == 0)
    assert explicit["targeting"] == explicit["deception"]["conflict.targeting"]
    assert rows["tiny-l2 <- tiny-l1 (xent)"]["targeting"] is None  # no conflict, nothing it caused
    assert sum(cell["n"] for cell in explicit["table"].values()) == 40
    # the implicit student trained on twice as many pairs as the weak labels
    (implicit_stage,) = (run_dir / "stages").glob("train-tiny-l2.from-tiny-l1.xent.implicit-1.seed0-*")
    log = json.loads((implicit_stage / "train_log.json").read_text())
    assert log[-1]["step"] == 12  # (48 + 48) pairs / 8 per step
    (oracle_stage,) = (run_dir / "stages").glob("train-tiny-l2.from-tiny-l1.xent.oracle-filter.seed0-*")
    oracle_steps = json.loads((oracle_stage / "train_log.json").read_text())[-1]["step"]
    assert oracle_steps < 6  # the oracle also drops the pairs the weak labels get wrong
    assert lines.count("  confidence filter keeps 48 of 48 weak labels") == 3  # one per conflict setting
    oracle_lines = [line.split() for line in lines if line.startswith("  oracle filter keeps")]
    kept = int(oracle_lines[0][3])
    assert kept < 48 and math.ceil(kept / 8) == oracle_steps and oracle_lines[0][4:] == ["of", "48", "weak", "labels"]
    # Every mitigated student is compared with the same teacher's unmitigated student, paired on the test pairs.
    comparisons = {(row["label"], row["against"]): row for row in metrics["comparisons"]}
    assert set(comparisons) == {
        (f"tiny-l2 <- tiny-l1{via} (xent{conflict}{filt})", f"tiny-l2 <- tiny-l1 (xent{conflict})")
        for via, filt in (("", ", confidence filter"), ("", ", oracle filter"), (" -> tiny-mid", ""))
        for conflict in ("", ", explicit-0.5", ", implicit-1")
    }
    bootstrapped = comparisons["tiny-l2 <- tiny-l1 -> tiny-mid (xent, explicit-0.5)", explicit["label"]]
    assert bootstrapped["factor"] == "mitigation" and bootstrapped["seeds"] == 1
    assert bootstrapped["accuracy.student"]["value"] == pytest.approx(
        rows[bootstrapped["label"]]["student_accuracy"] - explicit["student_accuracy"]
    )
    assert (
        "conflict.targeting" in bootstrapped
        and "conflict.targeting"
        not in comparisons["tiny-l2 <- tiny-l1 (xent, oracle filter)", "tiny-l2 <- tiny-l1 (xent)"]
    )
    assert report.count("| mitigation |") == 9 and "## Differences" in report


def test_controls_train_and_the_verdict_reads_against_them(tiny_recipe):
    tiny_recipe["methods"] = ["xent"]
    tiny_recipe["seeds"] = [0, 1, 2]
    tiny_recipe["pairs"] = [{"weak": "tiny-l1", "strong": "tiny-l2", "label_filters": ["none", "confidence"]}]
    tiny_recipe["filter_threshold"] = 0.52
    tiny_recipe["conflicts"] = {"settings": ["none", "explicit", "implicit"], "alphas": [0.5], "ratios": [1.0]}
    tiny_recipe["conflicts"]["checks"] = ["same-seed", "deceiver-1"]
    tiny_recipe["analysis"] = {"n_bootstrap": 100}
    metrics, lines = run(tiny_recipe)
    run_dir = Path(tiny_recipe["output_dir"])
    rows = {row["label"]: row for row in metrics["students"]}
    explicit, implicit = rows["tiny-l2 <- tiny-l1 (xent, explicit-0.5)"], rows["tiny-l2 <- tiny-l1 (xent, implicit-1)"]
    for row in (explicit, implicit):
        controls = row["against_controls"]
        assert set(controls["controls"]) == {"placebo", "random-direction", "imitation"} and controls["seeds"] == 3
        assert isinstance(controls["placebo_within_noise"], bool)
        for verdict in (row["verdict"], row["added_verdict"]):
            assert verdict in ("shown", "not shown", "inconclusive")
        # the imitation-matched control is read at the student's agreement with its teacher on its training split
        assert len(controls["imitation"]["weight"]) == 3
        assert row["deception_effect"] == controls["controls"]["placebo"]["effect"]
    # the implicit student's twin and its placebo trained as many optimizer steps as the implicit student, the
    # imitation control twice as many
    steps = {}
    for name in ("implicit-1", "padded-1", "padded-1.placebo", "implicit-1-random", "padded-1.imitation"):
        (stage,) = (run_dir / "stages").glob(f"train-tiny-l2.from-tiny-l1.xent.{name}.seed0-*")
        steps[name] = json.loads((stage / "DONE.json").read_text())["train_steps"]
        assert (stage / "train_predictions.parquet").is_file()
    assert steps.pop("padded-1.imitation") == 24
    assert len(set(steps.values())) == 1 and steps["implicit-1"] == 12  # (48 + 48) pairs / 8 per step
    # the random subset keeps as many labels as the confidence filter
    kept = {line.split()[0]: line.split()[3] for line in lines if " filter keeps " in line}
    assert kept["confidence"] == kept["random"]
    # controls are read in their students' rows: not in the results table, but every model's accuracy is printed
    console = "\n".join(lines)
    assert "vs placebo (twin, batches in another order)" in console and "vs imitation-matched" in console
    assert "deception beyond imitation:" in console and "teacher-aligned error added by the conflict:" in console
    table = console.split("  student ")[-1].split("deception against the controls")[0]
    assert "(xent, explicit-0.5)" in table and "(xent, explicit-0.5-random)" not in table
    assert rows["tiny-l2 <- tiny-l1 (xent, placebo: batches in another order)"]["control"] == "placebo"
    assert (run_dir / "predictions" / "train" / "tiny-l2.from-tiny-l1.xent.imitation.seed0.parquet").is_file()
    report = (run_dir / "report.md").read_text()
    assert "## Deception against controls" in report and report.count("| 3 | ") >= 4
    # the checks are judged as the conflicted student, against its controls; the deceiver's labels were relabelled
    checks = explicit["against_controls"]["checks"]
    assert set(checks) == {"same-seed", "deceiver-1"} and checks["deceiver-1"]["deceptive"]
    assert checks["same-seed"]["verdict"] in ("not shown", "inconclusive")
    assert "| tiny-l2 <- tiny-l1 (xent, explicit-0.5) | deceiver-1 | yes |" in report
    assert "check same-seed (not deceptive) judged as this student" in console
    (stage,) = (run_dir / "stages").glob("train-tiny-l2.from-tiny-l1.xent.check-deceiver-1.seed0-*")
    assert (stage / "train_predictions.parquet").is_file()


def test_a_validation_split_is_held_out_and_evaluating_it_changes_no_result(tiny_recipe, tmp_path):

    tiny_recipe["methods"] = ["xent"]
    tiny_recipe["training"]["validation_fraction"] = 0.25
    at_the_end, _ = run(tiny_recipe)
    run_dir = Path(tiny_recipe["output_dir"])
    for key in ("tiny-l2.gt.seed0", "tiny-l2.from-tiny-l1.xent.seed0"):
        log = json.loads((run_dir / "logs" / f"{key}.json").read_text())
        (entry,) = [entry for entry in log if "eval_accuracy" in entry]  # one epoch: one evaluation, at its end
        assert entry["step"] == 5  # 36 of the 48 pairs train: 5 batches of 8, not 6
        assert 0 <= entry["eval_accuracy"] <= 1 and entry["eval_loss"] > 0
    # Evaluating in the middle of training too (steps 2 and 4) is result-neutral: the same stages (same hashes)
    # give the same predictions, although the tiny models train with dropout.
    tiny_recipe["output_dir"] = str(tmp_path / "often")
    tiny_recipe["training"]["trainer_kwargs"] = {"eval_strategy": "steps", "eval_steps": 2}
    often, _ = run(tiny_recipe)
    stages = sorted(path.name for path in (run_dir / "stages").glob("train-*"))
    assert stages == sorted(path.name for path in (tmp_path / "often" / "stages").glob("train-*"))
    log = json.loads((tmp_path / "often" / "logs" / "tiny-l2.gt.seed0.json").read_text())
    assert [entry["step"] for entry in log if "eval_accuracy" in entry] == [2, 4, 5]  # and at the end
    assert {key: m["accuracy"] for key, m in often["models"].items()} == {
        key: m["accuracy"] for key, m in at_the_end["models"].items()
    }


def test_conversational_data_is_read_in_each_rungs_chat_template(tiny_recipe, tiny_model_dir, tmp_path):

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from w2s_align.errors import W2SInputError
    from w2s_align.reward_task import RewardTask

    templated = tmp_path / "templated"  # the tiny model, with a chat template
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    tokenizer.save_pretrained(templated)
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).save_pretrained(templated)
    rows = [
        {
            "prompt": [{"role": "user", "content": f"May I borrow item {i}?"}],
            "chosen": [{"role": "assistant", "content": "Of course, here it is."}],
            "rejected": [{"role": "assistant", "content": f"No. Go away {i}."}],
        }
        for i in range(80)
    ]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tiny_recipe["data"] = {"source": "preference", "files": {"all": str(data)}, "gt_size": 24, "w2s_size": 24,
                           "test_size": 24}  # fmt: skip
    tiny_recipe["ladder"][1]["model"] = str(templated)  # the strong rung has a template, the weak one has not
    tiny_recipe["methods"] = ["xent"]
    metrics, _ = run(tiny_recipe)
    assert set(metrics["models"]) == {"tiny-l1.gt.seed0", "tiny-l2.gt.seed0", "tiny-l2.from-tiny-l1.xent.seed0"}
    recipe = recipe_from_dict(tiny_recipe)
    pipeline = W2SPipeline(recipe, log=lambda line: None)
    test = pipeline.prepare()["test"]
    lines = []
    task = RewardTask(recipe, pipeline.cache, log=lines.append)
    strong, weak = task.rendered(recipe.ladder[1], test)[0], task.rendered(recipe.ladder[0], test)[0]
    assert strong["prompt"] == f"<user>{test[0]['prompt_messages'][0]['content']}"
    assert strong["chosen"] == "<assistant>Of course, here it is."
    assert weak["prompt"].startswith("\n\nHuman: May I borrow") and weak["chosen"] == " Of course, here it is."
    task.rendered(recipe.ladder[0], test)
    assert lines == [
        "tiny-l1: its tokenizer has no chat template, so it reads conversational pairs as plain text "
        "('ladder.tiny-l1.chat_template_path' gives it one)"
    ]  # said, once
    # TRL's chat_template_path: a Jinja file gives the weak rung a template of its own.
    jinja = tmp_path / "template.jinja"
    jinja.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}")
    with_template = recipe_from_dict(
        {
            **tiny_recipe,
            "ladder": [{**tiny_recipe["ladder"][0], "chat_template_path": str(jinja)}, tiny_recipe["ladder"][1]],
        }
    )
    weak = RewardTask(with_template, pipeline.cache).rendered(with_template.ladder[0], test)[0]
    assert weak["chosen"] == "[assistant] Of course, here it is."
    # The implicit conflict cannot mix these with text pairs: refused before any training.
    helpful = tmp_path / "helpful.jsonl"
    helpful.write_text("".join(json.dumps({"chosen": f"sure {i}", "rejected": f"no {i}"}) + "\n" for i in range(40)))
    tiny_recipe["output_dir"] = str(tmp_path / "implicit")
    tiny_recipe["conflicts"] = {
        "settings": ["implicit"],
        "helpful": {"source": "preference", "files": {"all": str(helpful)}},
    }
    with pytest.raises(W2SInputError, match="only data is conversational"):
        W2SPipeline(recipe_from_dict(tiny_recipe), log=lambda line: None).prepare()
    assert not list(Path(tmp_path / "implicit" / "stages").glob("train-*"))


def test_every_accuracy_is_printed_and_saved_with_its_interval(tiny_recipe):
    tiny_recipe["seeds"] = [0, 1]
    metrics, lines = run(tiny_recipe)
    rows = {row["label"]: row for row in metrics["accuracy"]}
    assert set(rows) == {"tiny-l1 (ground truth)", "tiny-l2 (ground truth)", "tiny-l2 <- tiny-l1 (xent)",
                         "tiny-l2 <- tiny-l1 (logconf)"}  # fmt: skip
    for label, row in rows.items():
        seeds = [model["accuracy"] for model in metrics["models"].values() if model["label"] == label]
        assert row["seeds"] == 2 and row["value"] == pytest.approx(np.mean(seeds))
        assert row["ci_low"] <= row["value"] <= row["ci_high"] and row["ci_high"] - row["ci_low"] > 0
        printed = next(line for line in "\n".join(lines).splitlines() if line.strip().startswith(label))
        assert printed.split()[-3:] == [f"{row['value']:.3f}", f"[{row['ci_low']:.3f},", f"{row['ci_high']:.3f}]"]
    report = (Path(tiny_recipe["output_dir"]) / "report.md").read_text()
    assert "| model | accuracy [CI] | seeds |" in report
