"""`w2s-align run --executor ray`: the plan's stages as Ray tasks on a local instance give the sequential run's
results; a failed stage stops the stages that read it with one line, and a rerun resumes from the stage cache; a
driver or a worker killed during the fan-out leaves no process behind and a rerun gives the same predictions; an
address without a Ray cluster stops the run with one line."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from datasets import Dataset

from w2s_align.cli import main
from w2s_align.pipeline import W2SPipeline
from w2s_align.recipe_yaml import recipe_from_dict

# One xdist worker runs these one at a time (`make test`: `--dist loadgroup`): each starts a local Ray instance, and
# two at once would contend for its default ports.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.xdist_group("ray")]
ray = pytest.importorskip("ray", reason="Ray is an optional extra (w2s_align[ray])")
psutil = pytest.importorskip("psutil")


def _margins(run_dir: Path) -> dict[str, np.ndarray]:
    return {
        path.stem: np.asarray(Dataset.from_parquet(str(path))["margin"])
        for path in sorted((run_dir / "predictions").glob("*.parquet"))
    }


def test_ray_gives_the_sequential_runs_results(tiny_recipe, tmp_path, capsys):
    tiny_recipe["analysis"] = {"n_bootstrap": 100}
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


# Runs of the command line on Ray in processes of their own: a killed driver or worker, a cluster that does not answer.
MARK = "W2S_RAY_TEST"  # in the environment of every process of a test's Ray instance, which Ray workers inherit


@pytest.fixture
def ray_env(tmp_path) -> dict[str, str]:
    """The environment of a run with a Ray instance of its own (RAY_TMPDIR holds its sessions and sockets: a short
    path, as sockets need), its processes marked, and a stale cluster recorded by an earlier `ray start` and named in
    RAY_ADDRESS: a run without --ray-address must start a local instance all the same."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="w2sray", dir="/tmp"))
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")
    yield {**os.environ, "RAY_TMPDIR": str(ray_tmp), "RAY_ADDRESS": "127.0.0.1:1", MARK: str(tmp_path)}
    shutil.rmtree(ray_tmp, ignore_errors=True)


def _marked(env: dict[str, str]) -> list:
    """The processes of the Ray instance of the run in `env`."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARK) == env[MARK]:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _left_over(env: dict[str, str], driver: subprocess.Popen | None = None) -> list[str]:
    """The processes of the run in `env` still alive a minute after its driver ended (then ended by the test)."""
    others = [process for process in _marked(env) if driver is None or process.pid != driver.pid]
    _, alive = psutil.wait_procs(others, timeout=60)
    names = [f"{process.pid} {process.name()}" for process in alive]
    for process in alive:
        process.kill()
    return names


def _command(recipe: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "w2s_align", "run", str(recipe), "--executor", "ray", "-q", *options]


def _run(recipe: Path, env: dict[str, str], *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(recipe, *options), env=env, capture_output=True, text=True, timeout=600)


def _write(recipe: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


def _stage_task(env: dict[str, str], driver: subprocess.Popen) -> Any:
    """A Ray worker running a stage of the run in `env`, once there is one: the run is fanned out."""
    deadline = time.monotonic() + 600  # against a hang, far above the seconds it takes
    while driver.poll() is None and time.monotonic() < deadline:
        for process in _marked(env):
            try:
                if "_run_stage" in " ".join(process.cmdline()):  # Ray names a busy worker after its task
                    return process
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise AssertionError(f"no stage ran on Ray (the run's code: {driver.poll()})")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Callable[[dict, dict[str, str]], dict[str, np.ndarray]]:
    """The margins a recipe's run on Ray gives when nothing stops it (run once per recipe)."""
    done: dict[str, dict[str, np.ndarray]] = {}

    def margins(recipe: dict, env: dict[str, str]) -> dict[str, np.ndarray]:
        key = yaml.safe_dump({**recipe, "output_dir": None})
        if key not in done:
            run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
            path = _write({**recipe, "output_dir": str(run_dir)}, run_dir.parent / "recipe.yaml")
            result = _run(path, env)
            assert result.returncode == 0, result.stderr
            done[key] = _margins(run_dir)
        return done[key]

    return margins


def _assert_identical(margins: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert margins.keys() == expected.keys()
    for key, values in expected.items():
        assert np.array_equal(margins[key], values), key


@pytest.mark.parametrize("kill", ["driver", "worker"])
def test_a_killed_driver_or_worker_leaves_no_process_and_a_rerun_gives_identical_predictions(
    tiny_recipe, tmp_path, ray_env, uninterrupted, kill
):
    tiny_recipe["analysis"] = {"n_bootstrap": 100}
    recipe = _write(tiny_recipe, tmp_path / "recipe.yaml")
    out, err = (tmp_path / "out.txt").open("w"), (tmp_path / "err.txt").open("w")
    driver = subprocess.Popen(_command(recipe), env=ray_env, stdout=out, stderr=err, start_new_session=True)
    try:
        stage = _stage_task(ray_env, driver)
        (driver if kill == "driver" else stage).kill()
        code = driver.wait(timeout=600)
    finally:
        driver.kill()  # ended already, unless the test failed before
    left = _left_over(ray_env, driver)
    assert not left, f"left running after the {kill} was killed: {left}"
    errors = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in errors
    if kill == "worker":  # Ray runs the stage again on another worker; or the run stops with one line
        assert code == 0 or (code == 2 and errors.startswith("error: ") and errors.count("\n") == 1), errors
    rerun = _run(recipe, ray_env)
    assert rerun.returncode == 0, rerun.stderr
    assert not _left_over(ray_env)
    _assert_identical(_margins(Path(tiny_recipe["output_dir"])), uninterrupted(tiny_recipe, ray_env))


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}", "auto"])
def test_an_address_that_is_no_ray_cluster_stops_the_run_with_one_line(tiny_recipe, tmp_path, ray_env, address):
    # A port that accepts connections and never answers (no Ray there); `auto` reads RAY_ADDRESS, a dead address.
    with socket.create_server(("0.0.0.0", 0), backlog=64) as mute:
        address = address.format(port=mute.getsockname()[1])
        result = _run(_write(tiny_recipe, tmp_path / "recipe.yaml"), ray_env, "--ray-address", address)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --ray-address {address}: could not connect to a Ray cluster (")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not _left_over(ray_env)
