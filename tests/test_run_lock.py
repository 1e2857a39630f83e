"""One run per output directory: a second run is refused with one line; a killed run's lock does not block."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from w2s_align.cli import main
from w2s_align.run_lock import LOCK_FILE, STALE_SECONDS, RunLock, machine_id


def recipe_file(tiny_recipe, tmp_path) -> Path:
    tiny_recipe["methods"] = ["xent"]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    return path


def finished_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_second_run_on_a_busy_output_directory_is_refused(tiny_recipe, tmp_path, capsys):
    run_dir = Path(tiny_recipe["output_dir"])
    with RunLock(run_dir):
        assert main(["run", str(recipe_file(tiny_recipe, tmp_path))]) == 2
        assert [path.name for path in run_dir.iterdir()] == [LOCK_FILE]  # the refused run wrote nothing
    err = capsys.readouterr().err
    assert err.startswith(f"error: output_dir {run_dir}: another w2s-align run is using it (process {os.getpid()} on")
    assert err.count("\n") == 1 and f"delete {run_dir / LOCK_FILE}" in err
    assert not run_dir.exists()  # the lock made the directory; released, it leaves nothing behind


@pytest.mark.slow  # a whole run
def test_a_lock_left_by_a_killed_run_does_not_block(tiny_recipe, tmp_path):
    run_dir = Path(tiny_recipe["output_dir"])
    run_dir.mkdir(parents=True)
    dead = {"host": socket.gethostname(), "machine": machine_id(), "pid": finished_pid(), "started": "earlier"}
    (run_dir / LOCK_FILE).write_text(json.dumps(dead))
    assert main(["run", str(recipe_file(tiny_recipe, tmp_path)), "-q"]) == 0
    assert (run_dir / "metrics.json").is_file() and not (run_dir / LOCK_FILE).exists()


def test_a_lock_from_another_container_with_the_same_host_name_is_not_judged_by_our_process_ids(tmp_path):
    """Containers often share a host name; a process id of another pid namespace says nothing here."""
    lock_file = tmp_path / LOCK_FILE
    other = {"host": socket.gethostname(), "machine": "another-container", "pid": finished_pid(), "started": "earlier"}
    lock_file.write_text(json.dumps(other))
    with pytest.raises(Exception, match="another w2s-align run is using it"):
        RunLock(tmp_path).acquire()  # its pid is not running here, but it may well be running there


def test_a_lock_from_another_host_holds_until_its_heartbeat_stops(tmp_path):
    lock_file = tmp_path / LOCK_FILE
    lock_file.write_text(json.dumps({"host": "node-7", "pid": 1234, "started": "earlier"}))
    with pytest.raises(Exception, match=r"another w2s-align run is using it \(process 1234 on node-7"):
        RunLock(tmp_path).acquire()
    old = time.time() - STALE_SECONDS - 60
    os.utime(lock_file, (old, old))  # no heartbeat for longer than STALE_SECONDS: that run is gone
    with RunLock(tmp_path):
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    assert not lock_file.exists()


@pytest.mark.slow
def test_two_runs_started_together_one_is_refused(tiny_recipe, tmp_path):
    # Long enough that the second run, which imports torch before it reaches the lock, finds the first still running.
    tiny_recipe["training"]["num_train_epochs"] = 20
    path = recipe_file(tiny_recipe, tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "w2s_align", "run", str(path), "-q"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock_file = Path(tiny_recipe["output_dir"]) / LOCK_FILE
    deadline = time.time() + 120
    while not lock_file.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 2
    assert f"another w2s-align run is using it (process {first.pid} on {socket.gethostname()}" in second.stderr
    assert "Traceback" not in second.stderr
    assert not lock_file.exists()


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_output_directory_that_cannot_be_made_stops_with_one_line(tiny_recipe, tmp_path, capsys, where):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    tiny_recipe["output_dir"] = str(blocker if where == "a file" else blocker / "run")
    assert main(["run", str(recipe_file(tiny_recipe, tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: output_dir {tiny_recipe['output_dir']}: cannot be made a directory (")
    assert err.count("\n") == 1


def links(tmp_path: Path, case: str) -> tuple[Path, str]:
    """An output_dir that a link would carry out of itself or nowhere, and the words of its refusal."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    if case == "dangling":
        (tmp_path / "gone").symlink_to(tmp_path / "missing")
        return tmp_path / "gone", "is a symbolic link that leads nowhere"
    if case == "looping":
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        return tmp_path / "loop" / "run", "is a symbolic link that leads nowhere"
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions").symlink_to(outside)
    return run, "predictions is a symbolic link out of the run directory"


@pytest.mark.parametrize("case", ["dangling", "looping", "predictions linked out"])
def test_a_link_that_leads_out_of_the_run_or_nowhere_stops_before_anything_is_written(
    tiny_recipe, tmp_path, capsys, case
):
    output_dir, words = links(tmp_path, case)
    tiny_recipe["output_dir"] = str(output_dir)
    assert main(["run", str(recipe_file(tiny_recipe, tmp_path))]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert not any((tmp_path / "elsewhere").iterdir())


def test_a_home_relative_output_dir_is_written_under_home(tiny_recipe, tmp_path, monkeypatch):
    from w2s_align.recipe_yaml import recipe_from_dict

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    tiny_recipe["output_dir"] = "~/runs/x"
    assert recipe_from_dict(tiny_recipe).run_dir == tmp_path / "home" / "runs" / "x"


@pytest.mark.slow
def test_ctrl_c_prints_one_line_exits_130_and_the_rerun_resumes(tiny_recipe, tmp_path):
    path = recipe_file(tiny_recipe, tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "w2s_align", "run", str(path)]
    # A test session started in the background (`pytest &`) ignores SIGINT, and so would the run it starts: the run
    # gets the default disposition, as when started from a terminal.
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    stages = Path(tiny_recipe["output_dir"]) / "stages"
    deadline = time.time() + 300
    while not list(stages.glob("train-*/DONE.json")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # interrupted once the first model has trained
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, err[-2000:]
    assert err.strip() == (
        "interrupted: w2s-align run stopped; run it again to resume (finished stages are kept; training resumes "
        "from its last checkpoint)"
    )
    assert not (Path(tiny_recipe["output_dir"]) / LOCK_FILE).exists()
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "training tiny-l1 (ground truth), seed 0" not in rerun.stdout  # kept from the interrupted run
