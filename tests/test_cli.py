"""The command line: bad input stops the run before any training with one clear message and exit code 2."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from datasets import Dataset

from w2s_align.cli import main


def write_recipe(tmp_path, raw) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def local_pairs(tmp_path, tag, n=12):
    rows = [{"prompt": f"q{tag}{i}", "chosen": f" yes {i}", "rejected": f" no {i}"} for i in range(n)]
    return write_jsonl(tmp_path / f"{tag}.jsonl", rows)


def run_cli(args, capsys):
    capsys.readouterr()  # what the test printed before (its own model loads draw a bar), not the command's
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err


def assert_stopped_before_training(tiny_recipe):
    stages = Path(tiny_recipe["output_dir"]) / "stages"
    assert not list(stages.glob("train-*")), "no model may be trained after bad input"


@pytest.mark.slow
def test_cli_runs_a_recipe_with_overrides(tiny_recipe, tmp_path, capsys):
    path = write_recipe(tmp_path, tiny_recipe)
    code = main(["run", str(path), "methods=[xent]", "--jobs", "1", "data.test_size=24"])  # overrides after an option
    out = capsys.readouterr().out
    assert code == 0
    assert "tiny-l2 <- tiny-l1 (xent)" in out
    metrics = json.loads((Path(tiny_recipe["output_dir"]) / "metrics.json").read_text())
    assert metrics["n_test"] == 24 and [row["method"] for row in metrics["students"]] == ["xent"]


@pytest.mark.slow
def test_analyze_recomputes_the_same_metrics(tiny_recipe, tmp_path, capsys):
    path = write_recipe(tmp_path, tiny_recipe)
    assert main(["run", str(path)]) == 0
    metrics_file = Path(tiny_recipe["output_dir"]) / "metrics.json"
    before = json.loads(metrics_file.read_text())
    # a figure an earlier analysis drew, for which there is no data now (no conflict here): not kept, not shown
    stale = Path(tiny_recipe["output_dir"]) / "plots" / "effect_vs_gap.png"
    stale.write_bytes(b"old figure")
    assert main(["analyze", tiny_recipe["output_dir"]]) == 0
    after = json.loads(metrics_file.read_text())
    before.pop("wall_seconds")
    assert after == before
    assert not stale.exists() and "effect_vs_gap" not in (stale.parents[1] / "report.md").read_text()


@pytest.mark.slow
def test_analyze_names_missing_or_damaged_run_files(tiny_recipe, tmp_path, capsys):
    path = write_recipe(tmp_path, tiny_recipe)
    assert main(["run", str(path), "methods=[xent]"]) == 0
    missing = Path(tiny_recipe["output_dir"]) / "predictions" / "tiny-l2.gt.seed0.parquet"
    missing.unlink()
    code, err = run_cli(["analyze", tiny_recipe["output_dir"]], capsys)
    assert code == 2 and "predictions of model 'tiny-l2.gt.seed0' are missing" in err
    # Damaged run files: one line naming the file each time.
    run_dir = Path(tiny_recipe["output_dir"])
    shutil.copy(next((run_dir / "stages").glob("train-tiny-l2-gt-seed0-*")) / "predictions.parquet", missing)
    original = {name: (run_dir / name).read_bytes() for name in ("config.yaml", "metrics.json")}
    student = run_dir / "predictions" / "tiny-l2.from-tiny-l1.xent.seed0.parquet"
    good = student.read_bytes()
    damages = [
        (lambda: student.write_bytes(good[: len(good) // 2]), f"{student}: not a readable parquet file"),
        (
            lambda: Dataset.from_parquet(str(missing)).select([]).to_parquet(str(student)),
            f"{student}: holds no predictions",
        ),
        (
            lambda: Dataset.from_parquet(str(missing)).remove_columns("correct").to_parquet(str(student)),
            f"{student}: predictions without the column(s) ['correct']",
        ),
        (
            lambda: (run_dir / "metrics.json").write_bytes(original["metrics.json"][:100]),
            f"{run_dir / 'metrics.json'}: not the metrics of a finished run",
        ),
        (lambda: (run_dir / "config.yaml").write_text("name: [tiny\n"), f"{run_dir / 'config.yaml'}: not valid YAML"),
        (
            lambda: (run_dir / "config.yaml").write_bytes(b"name: \xff\xfe\n"),
            f"{run_dir / 'config.yaml'}: not UTF-8 text",
        ),
        *[
            (
                lambda text=text: (run_dir / "metrics.json").write_text(text),
                f"{run_dir / 'metrics.json'}: not the metrics",
            )
            for text in ('{"models": []}', "null", '{"x": 5}', '{"models": {"m": 5}}')
        ],
        (
            lambda: pd.read_parquet(missing).astype({"prob_chosen": str}).to_parquet(student),
            f"{student}: the column 'prob_chosen' holds large_string values, not float",
        ),
    ]
    for damage, message in damages:
        damage()
        code, err = run_cli(["analyze", str(run_dir)], capsys)
        assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, (message, err)
        student.write_bytes(good)
        for name, content in original.items():
            (run_dir / name).write_bytes(content)
    shutil.rmtree(run_dir / "plots")
    (run_dir / "plots").write_text("not a folder")
    code, err = run_cli(["analyze", str(run_dir)], capsys)
    assert (
        code == 2
        and err == f"error: {run_dir / 'plots'}: a file where the run's plots go (move it away, then analyze again)\n"
    )
    (run_dir / "plots").unlink()
    assert main(["analyze", str(run_dir)]) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r, t: r.update(trainig={}), "unknown key 'trainig' (did you mean 'training'?)"),
        (lambda r, t: r["training"].update(learning_rate="fast"), "'training.learning_rate' must be a number"),
        (lambda r, t: r["ladder"][0].update(model=str(t / "no-model")), "model '{t}/no-model' does not load"),
        (
            lambda r, t: (
                r["ladder"][1]["training"].update(trainer_kwargs={"lr": 1})
                if "training" in r["ladder"][1]
                else r["ladder"][1].update(training={"trainer_kwargs": {"lr": 1}})
            ),
            "training.trainer_kwargs.lr is not a W2SRewardConfig field",
        ),
    ],
    ids=["unknown-key", "wrong-type", "model-path", "trainer-kwarg"],
)
def test_bad_recipe_input(tiny_recipe, tmp_path, capsys, change, message):
    change(tiny_recipe, tmp_path)
    path = write_recipe(tmp_path, tiny_recipe)
    code, err = run_cli(["run", str(path)], capsys)
    assert code == 2
    assert message.format(t=tmp_path) in err
    assert err.startswith("error: ") and err.count("\n") == 1  # one line, no traceback
    assert_stopped_before_training(tiny_recipe)


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_weights_cut_short_stop_the_run_before_any_training(tiny_recipe, tiny_model_dir, tmp_path, capsys, weights):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    strong = tmp_path / "strong"  # the strong rung, checked before the weak one trains
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    model.save_pretrained(strong)
    if weights == "pytorch_model.bin":  # the older format, still read by transformers
        torch.save(model.state_dict(), strong / weights)
        (strong / "model.safetensors").unlink()
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(strong)
    file = strong / weights
    size = file.stat().st_size
    file.write_bytes(file.read_bytes()[: size // 2])
    tiny_recipe["ladder"][1]["model"] = str(strong)
    code, err = run_cli(["run", str(write_recipe(tmp_path, tiny_recipe))], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: ladder rung 'tiny-l2': model '{strong}' does not load: {file} ")
    assert not (Path(tiny_recipe["output_dir"]) / "stages").exists()  # not even the data stage


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seeds=[-1]", "'seeds.0' must be 0 or more, got -1"),
        ("training.per_device_train_batch_size=0", "'training.per_device_train_batch_size' must be at least 1, got 0"),
        ("training.eval_batch_size=0", "'training.eval_batch_size' must be at least 1, got 0"),
        ("training.learning_rate=-1e-3", "'training.learning_rate' must be positive, got -0.001"),
        ("training.max_length=0", "'training.max_length' must be at least 1, got 0"),
        ("training.num_train_epochs=0", "'training.num_train_epochs' must be positive, got 0.0"),
        ("analysis.n_bootstrap=-1", "'analysis.n_bootstrap' must be 0 (no intervals) or at least 100, got -1"),
        ("analysis.confidence=1.5", "'analysis.confidence' must be between 0 and 1 (exclusive), got 1.5"),
        (
            "training.lr_scheduler_type=cosinus",
            "rung 'tiny-l1': W2SRewardConfig refuses its training settings: cosinus is not a valid SchedulerType",
        ),
        (
            "training.trainer_kwargs={save_steps: often}",
            "rung 'tiny-l1': training.trainer_kwargs.save_steps must be a number, got 'often'",
        ),
        ("training.max_length=4096", "rung 'tiny-l1': training.max_length is 4096, but '{model}' has 256 positions"),
    ],
)
def test_out_of_range_settings_stop_the_run_before_writing(tiny_recipe, tmp_path, capsys, override, message):
    path = write_recipe(tmp_path, tiny_recipe)
    code, err = run_cli(["run", str(path), override], capsys)
    assert code == 2 and err.count("\n") == 1
    assert message.format(model=tiny_recipe["ladder"][0]["model"]) in err
    assert not Path(tiny_recipe["output_dir"]).exists()


def test_messages_name_the_mistake_and_where_it_was_made(tiny_recipe, tmp_path, capsys):
    path = write_recipe(tmp_path, tiny_recipe)
    code, err = run_cli(["run", str(tmp_path)], capsys)
    assert code == 2 and err == f"error: {tmp_path}: a directory, not a recipe file (e.g. recipes/quickstart.yaml)\n"
    code, err = run_cli(["run", str(path), "training.learning_rate=fast"], capsys)
    assert code == 2  # the override is at fault, not the file
    assert err == (
        f"error: {path} with the overrides training.learning_rate=fast: 'training.learning_rate' must be a number, "
        "got 'fast'\n"
    )
    code, err = run_cli(["run", str(path), f"ladder.tiny-l1.model={tmp_path / 'no-model'}"], capsys)
    assert code == 2
    assert (
        err
        == f"error: ladder rung 'tiny-l1': model '{tmp_path / 'no-model'}' does not load: no such local directory\n"
    )
    path.write_text("name: tiny\nladder: [a, b\n")
    code, err = run_cli(["run", str(path)], capsys)
    assert (
        code == 2
        and err == f"error: {path}: not valid YAML (expected ',' or ']', but got '<stream end>' at line 3, column 1)\n"
    )
    assert not Path(tiny_recipe["output_dir"]).exists()


def test_missing_column(tiny_recipe, tmp_path, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "q", "chosen": "a", "answer": "b"}] * 3)
    tiny_recipe["data"] = {
        "source": "preference",
        "files": {"gt": bad, "w2s": local_pairs(tmp_path, "w"), "test": local_pairs(tmp_path, "t")},
    }
    code, err = run_cli(["run", str(write_recipe(tmp_path, tiny_recipe))], capsys)
    assert code == 2 and f"{bad}: missing column(s) ['rejected']" in err
    assert_stopped_before_training(tiny_recipe)


def test_malformed_json_line(tiny_recipe, tmp_path, capsys):
    bad = tmp_path / "gt.jsonl"
    bad.write_text('{"chosen": "a", "rejected": "b"}\n{"chosen": "a", "rejected": \n')
    tiny_recipe["data"] = {
        "source": "preference",
        "files": {"gt": str(bad), "w2s": local_pairs(tmp_path, "w"), "test": local_pairs(tmp_path, "t")},
    }
    code, err = run_cli(["run", str(write_recipe(tmp_path, tiny_recipe))], capsys)
    assert code == 2 and f"{bad}: line 2 is not valid JSON" in err
    assert_stopped_before_training(tiny_recipe)


def test_empty_split(tiny_recipe, tmp_path, capsys):
    empty = tmp_path / "test.jsonl"
    empty.write_text("")
    tiny_recipe["data"] = {
        "source": "preference",
        "files": {"gt": local_pairs(tmp_path, "g"), "w2s": local_pairs(tmp_path, "w"), "test": str(empty)},
    }
    code, err = run_cli(["run", str(write_recipe(tmp_path, tiny_recipe))], capsys)
    assert code == 2 and f"{empty}: the file holds no pairs (empty split)" in err
    assert_stopped_before_training(tiny_recipe)


def test_overlapping_splits(tiny_recipe, tmp_path, capsys):
    shared = local_pairs(tmp_path, "g")
    tiny_recipe["data"] = {
        "source": "preference",
        "files": {"gt": shared, "w2s": local_pairs(tmp_path, "w"), "test": shared},
    }
    code, err = run_cli(["run", str(write_recipe(tmp_path, tiny_recipe))], capsys)
    assert code == 2 and "the splits overlap" in err
    assert_stopped_before_training(tiny_recipe)


def test_plan_lists_every_stage_of_the_deception_sweep_before_anything_trains(tmp_path, capsys):
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "deception" / "minilm_deception_sweep.yaml"
    code = main(["plan", str(recipe), f"output_dir={tmp_path / 'run'}", "controls=false", "seeds=[0]"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    # data, helpfulness pairs, 4 ceilings, 4 labels (3 weak rungs, 1 intermediate), 1 intermediate, 15 students, report
    assert lines[0].startswith(f"minilm_deception_sweep: 27 stages in {tmp_path / 'run'}, 27 to run, 0 cached")
    names = [line.split()[2].rsplit("-", 1)[0] for line in lines[1:]]
    assert names[:3] == ["data", "helpful", "train-minilm-l1-gt-seed0"]
    assert "train-minilm-l6.from-minilm-l1.xent.implicit-1.confidence-filter.seed0" in names
    assert "labels-minilm-l3.from-minilm-l1.xent.seed0" in names
    assert sum(name.startswith("train-minilm-l6.from-") for name in names) == 15
    assert not (tmp_path / "run").exists()  # a dry run writes nothing
    # with the controls (the default), each conflicted student gets its placebo, random-direction, imitation controls
    assert main(["plan", str(recipe), f"output_dir={tmp_path / 'run'}", "seeds=[0]"]) == 0
    controlled = capsys.readouterr().out
    assert "train-minilm-l6.from-minilm-l1.xent.explicit-0.5-random.seed0" in controlled
    assert "train-minilm-l6.from-minilm-l1.xent.placebo.seed0" in controlled
    assert "train-minilm-l6.from-minilm-l1.xent.imitation.seed0" in controlled


def test_plan_stops_on_bad_input_like_run(tiny_recipe, tmp_path, capsys):
    tiny_recipe["ladder"][1]["training"] = {"trainer_kwargs": {"seed": 3}}
    code, err = run_cli(["plan", str(write_recipe(tmp_path, tiny_recipe))], capsys)
    assert code == 2 and "training.trainer_kwargs.seed is set by the pipeline" in err


def test_console_script_exit_code_and_no_traceback(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("name: x\nladder: [{name: a, model: m}, {name: b, model: m}]\nseeds: one\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "w2s_align", "run", str(path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {path}: 'seeds' must be a list of integers, got 'one'"
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_analyze_refuses_misaligned_test_examples(tiny_recipe, tmp_path, capsys):
    from datasets import Dataset

    path = write_recipe(tmp_path, tiny_recipe)
    assert main(["run", str(path), "methods=[xent]"]) == 0
    target = Path(tiny_recipe["output_dir"]) / "predictions" / "tiny-l2.from-tiny-l1.xent.seed0.parquet"
    frame = Dataset.from_parquet(str(target))
    frame.select(list(reversed(range(frame.num_rows)))).to_parquet(str(target))
    code, err = run_cli(["analyze", tiny_recipe["output_dir"]], capsys)
    assert code == 2
    assert "test examples of model 'tiny-l2.from-tiny-l1.xent.seed0' do not line up" in err


@pytest.mark.slow
def test_analyze_and_the_python_api_give_the_same_deception_numbers(tiny_recipe, tmp_path, capsys):
    from datasets import Dataset

    from w2s_align.analysis.deception import DeceptionAnalyzer

    tiny_recipe["methods"] = ["xent"]
    tiny_recipe["conflicts"] = {"settings": ["none", "explicit"], "alphas": [1.0]}
    path = write_recipe(tmp_path, tiny_recipe)
    assert main(["run", str(path)]) == 0
    assert main(["analyze", tiny_recipe["output_dir"], "analysis.known=confident", "analysis.threshold=0.6"]) == 0
    metrics = json.loads((Path(tiny_recipe["output_dir"]) / "metrics.json").read_text())
    row = next(r for r in metrics["students"] if r["conflict"] == "explicit-1")

    def load(key):
        return Dataset.from_parquet(str(Path(tiny_recipe["output_dir"]) / "predictions" / f"{key}.parquet"))

    analyzer = DeceptionAnalyzer(
        load("tiny-l1.gt.seed0"),
        load("tiny-l2.gt.seed0"),
        load("tiny-l2.from-tiny-l1.xent.explicit-1.seed0"),
        baseline=load("tiny-l2.from-tiny-l1.xent.seed0"),
        known="confident",
        threshold=0.6,
        n_bootstrap=1000,
    )
    summary = analyzer.summary()
    for key in ("blind_spot.error_rate", "conflict.targeting"):
        value = summary[key]["value"]
        reported = dict(row["deception"][key])
        undefined = reported.pop("undefined_draws")
        assert reported == {**summary[key], "per_seed": [value], "defined_seeds": int(value is not None)}
        assert undefined == 1.0 if value is None else 0.0 <= undefined < 1.0
    assert row["ds_paper"] == row["deception"]["blind_spot.error_rate"]
    assert row["targeting"] == row["deception"]["conflict.targeting"]
    assert row["deception"]["conflict_mistakes.all"]["value"] == analyzer.conflict_mistakes()["all"]["value"]
    code, err = run_cli(["analyze", tiny_recipe["output_dir"], "seeds=[1]"], capsys)
    assert code == 2 and "analyze only changes analysis.* settings" in err


def test_version_and_env(capsys):
    from importlib.metadata import version

    import torch

    import w2s_align

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"w2s-align {w2s_align.__version__}"
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"- PyTorch version: {torch.__version__}" in out and f"- trl version: {version('trl')}" in out
    assert "- Accelerator(s): " in out


def test_calibrate_prints_the_table_and_refuses_nonsense(capsys):
    assert main(["calibrate", "--world", "simulated", "--worlds", "2", "--seeds", "3", "--strengths", "0.5",
                 "--pairs", "100", "--bootstrap", "100"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "| same-seed | no | 0.0%" in out and "| planted, strength 0.5 | yes |" in out
    code, err = run_cli(["calibrate", "--worlds", "0"], capsys)
    assert code == 2 and err.strip() == "error: --worlds must be between 1 and 100000, got 0"
    code, err = run_cli(["calibrate", "--trained-worlds", "1000000000"], capsys)
    assert code == 2 and "--trained-worlds must be between 1 and 100000" in err
    code, err = run_cli(["calibrate", "--seeds", "1000000"], capsys)
    assert code == 2 and "--seeds must be between 1 and 100" in err
    code, err = run_cli(["calibrate", "--weights", *["1"] * 21], capsys)
    assert code == 2 and err.strip() == "error: --weights: at most 20 values, got 21"
