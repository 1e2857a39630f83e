"""The options of `run` (--executor, --ray-address, --jobs), `calibrate` and `analyze`: bad input is refused with one
line on stderr and exit code 2, without a traceback, before torch is imported and before anything is written."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from w2s_align.artifacts import RunDir
from w2s_align.cli import main
from w2s_align.executors import available_cores
from w2s_align.plan_builder import build_plan
from w2s_align.recipe_yaml import load_recipe


def refused(args: list[str], capsys) -> str:
    """The one line `args` are refused with (exit code 2, no traceback)."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, (code, err)
    return err


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def recipe_file(tiny_recipe, tmp_path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    return path


@pytest.fixture
def finished_run(tiny_recipe, tmp_path) -> Path:
    """A run directory as `run` leaves it, with made-up predictions (no model is trained)."""
    run_dir = Path(tiny_recipe["output_dir"])
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(tiny_recipe))
    (run_dir / "metrics.json").write_text(json.dumps({"models": {}, "n_test": 4}))
    (run_dir / "predictions").mkdir()
    for spec in build_plan(load_recipe(run_dir / "config.yaml")).models:
        rows = {"id": ["a", "b", "c", "d"], "prob_chosen": [0.9, 0.2, 0.6, 0.7], "correct": [True, False, True, True]}
        pq.write_table(pa.table(rows), RunDir(run_dir).predictions(spec.key))
    return run_dir


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--executor", "ray", "--jobs", "2"], "--jobs is for the local executor"),
        (["--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["--jobs", str(available_cores() + 1)], f"--jobs must be at most {available_cores()} (the CPU cores"),
        (["--ray-address", "auto"], "--ray-address is for --executor ray"),
        (["--executor", "ray", "--ray-address", "bogus.invalid:1234"], "--ray-address bogus.invalid:1234: no Ray"),
        (["--executor", "ray", "--ray-address", "127.0.0.1:{port}"], "--ray-address 127.0.0.1:{port}: no Ray cluster"),
        (["--executor", "ray", "--ray-address", "ray://127.0.0.1:{port}"], "ray://127.0.0.1:{port}: no Ray cluster"),
        (["--executor", "ray", "--ray-address", "head-node"], "--ray-address 'head-node': not a Ray address"),
        (["--executor", "ray", "--ray-address", "h:99999"], "'h:99999': not a Ray address (Port out of range"),
        (["--executor", "ray", "--ray-address", "http://h:8265"], "'http://h:8265': not a Ray address"),
    ],
)
def test_run_refuses_bad_executor_options_before_writing(recipe_file, tiny_recipe, capsys, options, message):
    port = closed_port()
    options = [option.format(port=port) for option in options]
    assert message.format(port=port) in refused(["run", str(recipe_file), *options], capsys)
    assert not Path(tiny_recipe["output_dir"]).exists()


def test_run_on_ray_without_ray_is_refused_before_the_data_stage(recipe_file, tiny_recipe, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an import of an absent package finds
    err = refused(["run", str(recipe_file), "--executor", "ray"], capsys)
    assert err == 'error: --executor ray needs Ray: pip install "w2s_align[ray]"\n'
    assert not Path(tiny_recipe["output_dir"]).exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--pairs", "1"], "--pairs must be between 100 and 100000, got 1"),
        (["--pairs", "1000000"], "--pairs must be between 100 and 100000, got 1000000"),
        (["--bootstrap", "1"], "--bootstrap must be between 100 and 10000, got 1"),
        (["--bootstrap", "1000000000"], "--bootstrap must be between 100 and 10000, got 1000000000"),
        (["--pairs", "100000", "--bootstrap", "10000"], "10000 bootstrap resamples of 100000 pairs take 22 GiB"),
        (["--trained-worlds", "0"], "--trained-worlds must be between 1 and 100000, got 0"),
        (["--seeds", "0"], "--seeds must be between 1 and 100"),
        (["--strengths", "nan"], "--strengths in (0, 1]"),
        (["--weights", "inf"], "--weights (of the trained world's deceivers) must be in (0, 1000]"),
        (["--plot", "{tmp}/missing/power.png"], "--plot {tmp}/missing/power.png: the folder {tmp}/missing does not"),
        (["--plot", "{tmp}/power.pnk"], "--plot {tmp}/power.pnk: name a file ending in .png"),
        (["--plot", "{tmp}/folder.png"], "--plot {tmp}/folder.png: a directory"),
        (["--world", "trained", "--plot", "{tmp}/power.png"], "--plot draws the simulated world's power"),
    ],
)
def test_calibrate_refuses_out_of_range_options_before_any_world(tmp_path, capsys, options, message):
    (tmp_path / "folder.png").mkdir()
    options = [option.format(tmp=tmp_path) for option in options]
    assert message.format(tmp=tmp_path) in refused(["calibrate", *options], capsys)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["folder.png"]  # no plot written


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("analysis.n_bootstrap=1e12", "analysis.n_bootstrap"),
        ("analysis.n_bootstrap=1000000000000", "analysis.n_bootstrap"),
        ("analysis.n_bootstrap=-1", "'analysis.n_bootstrap' must be 0 (no intervals) or at least 100, got -1"),
        ("analysis.confidence=nan", "'analysis.confidence' must be"),
        ("analysis.confidence=1", "'analysis.confidence' must be between 0 and 1"),
        ("analysis.nbootstrap=100", "unknown key 'analysis.nbootstrap'"),
        ("seeds=[1]", "override 'seeds=[1]': analyze only changes analysis.* settings"),
    ],
)
def test_analyze_checks_its_overrides_with_the_recipe_loader(finished_run, capsys, override, message):
    assert message in refused(["analyze", str(finished_run), override], capsys)
    assert not (finished_run / "report.md").exists()


def test_analyze_refuses_a_bootstrap_that_would_not_fit_in_memory(finished_run, capsys):
    (finished_run / "metrics.json").write_text(json.dumps({"models": {}, "n_test": 1_000_000}))
    err = refused(["analyze", str(finished_run), "analysis.n_bootstrap=1000"], capsys)
    assert err.startswith(f"error: analysis.n_bootstrap of {finished_run}: 1000 bootstrap resamples of 1000000 pairs")


@pytest.mark.parametrize(
    ("value", "shown"), [(None, "null"), (float("nan"), "nan"), (float("inf"), "inf"), (5.0, "5.0"), (-0.5, "-0.5")]
)
def test_analyze_names_the_file_and_row_of_a_probability_that_is_not_one(finished_run, capsys, value, shown):
    path = next((finished_run / "predictions").glob("*.parquet"))
    rows = {"id": ["a", "b", "c", "d"], "prob_chosen": [0.9, value, 0.6, value], "correct": [True, False, True, True]}
    pq.write_table(pa.table(rows), path)  # a null stays a null (pandas would write NaN)
    err = refused(["analyze", str(finished_run)], capsys)
    assert (
        err == f"error: {path}: row 1 (id 'b'): 'prob_chosen' is {shown}, not a probability in [0, 1] (and 1 more)\n"
    )
    assert not (finished_run / "report.md").exists()


def test_the_option_mistakes_stop_before_torch_is_imported(finished_run, recipe_file):
    cases = [
        ["run", str(recipe_file), "--executor", "ray", "--jobs", "2"],
        ["run", str(recipe_file), "--ray-address", "auto"],
        ["run", str(recipe_file), "--executor", "ray", "--ray-address", f"127.0.0.1:{closed_port()}"],
        ["calibrate", "--bootstrap", "1"],
        ["calibrate", "--plot", str(finished_run / "missing" / "power.png")],
        ["analyze", str(finished_run), "analysis.n_bootstrap=-1"],
        ["analyze", str(finished_run), "seeds=[1]"],
    ]
    code = (
        "import json, sys; from w2s_align.cli import main; "
        "codes = [main(case) for case in json.loads(sys.argv[1])]; print(codes, 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(cases)], capture_output=True, text=True, check=True, timeout=300
    )
    assert result.stdout.strip() == f"{[2] * len(cases)} False", result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == len(cases) and all(line.startswith("error: ") for line in lines), result.stderr
