"""`w2s-align run --jobs N`: independent stages on worker processes, each once the stages it reads are finished."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from w2s_align.cli import main
from w2s_align.parallel_stages import dependents, must_wait, threads_per_job
from w2s_align.pipeline import W2SPipeline
from w2s_align.plan_builder import build_plan
from w2s_align.recipe_yaml import recipe_from_dict
from w2s_align.specs import CeilingSpec, LabelSpec, SFTSpec, StudentSpec


def _plan(**changes):
    raw = {
        "name": "jobs",
        "output_dir": "unused",
        "data": {"source": "synthetic", "gt_size": 40, "w2s_size": 30, "test_size": 20},
        "ladder": [{"name": name, "model": "m"} for name in ("s", "m", "l")],
        "pairs": [{"weak": "s", "strong": "l"}, {"weak": "s", "strong": "l", "via": ["m"]}],
        "conflicts": {"settings": ["none", "explicit"], "alphas": [0.5]},
        **changes,
    }
    return build_plan(recipe_from_dict(raw))


def test_a_stage_waits_for_every_stage_it_reads_and_for_nothing_else():
    steps = _plan().steps
    ceilings = [step for step in steps if isinstance(step, CeilingSpec)]
    labels = {step.key: step for step in steps if isinstance(step, LabelSpec)}
    students = [step for step in steps if isinstance(step, StudentSpec)]
    for ceiling in ceilings:  # the data stage is prepared before any worker starts
        assert not must_wait(ceiling, steps, [])
    first = labels["s.seed0"]
    assert must_wait(first, [], [first.teacher])  # its teacher still training
    assert not must_wait(first, [ceilings[-1]], [])  # another ceiling does not hold it up
    direct = [student for student in students if not student.via]
    assert {student.labels.key for student in direct} == {"s.seed0"}
    for student in direct:  # both conflict settings, once the labels are written
        assert must_wait(student, [first], []) and not must_wait(student, ceilings, [])
    # bootstrapping: the intermediate student labels for the last one
    chained = next(student for student in students if student.via)
    assert chained.labels.teacher.key == "m.from-s.xent.seed0"
    assert must_wait(chained, [chained.labels], []) and must_wait(chained, [], [chained.labels])
    assert not must_wait(chained, [first, *ceilings], [])  # all it reads is the intermediate student's labels


def test_the_stages_most_others_wait_on_come_first():
    steps = _plan(controls=False).steps
    count = {step.stage_name: n for step in steps for key, n in dependents(steps).items() if key == id(step)}
    # the weak ceiling: its labels, 2 direct students, the intermediate student, its labels, 2 bootstrapped students
    assert count["train-s-gt-seed0"] == 7
    assert count["train-m.from-s.xent.seed0"] == 3  # its labels and the 2 bootstrapped students
    assert count["train-l-gt-seed0"] == 0 and count["train-l.from-s.xent.seed0"] == 0
    assert max(count, key=count.get) == "train-s-gt-seed0"


def test_a_policy_waits_for_the_sft_stage_it_starts_from_which_students_of_the_same_pairs_share():
    steps = _plan(task="dpo", methods=["xent", "logconf"], conflicts={"settings": ["none"]}, controls=False).steps
    students = [step for step in steps if isinstance(step, StudentSpec) and not step.via and step.rung.name == "l"]
    assert [student.method for student in students] == ["xent", "logconf"]
    sft = students[0].sft
    assert isinstance(sft, SFTSpec) and students[1].sft is sft and steps.index(sft) < steps.index(students[0])
    assert must_wait(students[1], [sft], []) and must_wait(students[1], [], [sft])
    assert not must_wait(students[1], [], [students[0]])  # once their SFT is done, the two methods train at once
    ceilings = [step for step in steps if isinstance(step, CeilingSpec)]
    assert all(ceiling.sft.model.key == ceiling.key for ceiling in ceilings)  # a ceiling's SFT: on its own pairs
    assert not [step for step in _plan(controls=False).steps if isinstance(step, SFTSpec)]  # reward models: none


@pytest.mark.parametrize(("jobs", "threads", "share"), [(2, 2, 1), (2, 16, 8), (3, 16, 5), (4, 2, 1)])
def test_each_worker_gets_its_share_of_the_threads(jobs, threads, share):
    assert threads_per_job(jobs, threads) == share


def test_jobs_below_one_is_refused(tiny_recipe, tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(tiny_recipe))
    assert main(["run", str(path), "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --jobs must be at least 1, got 0"
    assert not Path(tiny_recipe["output_dir"]).exists()


@pytest.mark.slow
def test_two_workers_give_the_sequential_results(tiny_recipe, tmp_path, capfd):
    tiny_recipe["ladder"].insert(1, {"name": "tiny-mid", "model": tiny_recipe["ladder"][0]["model"], "num_layers": 2})
    tiny_recipe["pairs"] = [
        {"weak": "tiny-l1", "strong": "tiny-l2"},
        {"weak": "tiny-l1", "strong": "tiny-l2", "via": ["tiny-mid"]},
    ]
    tiny_recipe["conflicts"] = {"settings": ["none", "explicit"], "alphas": [0.5]}
    tiny_recipe["analysis"] = {"n_bootstrap": 100}
    tiny_recipe["methods"] = ["xent"]
    results = {}
    for jobs in (2, 1):
        raw = {**tiny_recipe, "output_dir": str(tmp_path / f"jobs{jobs}")}
        pipeline = W2SPipeline(recipe_from_dict(raw), jobs=jobs)
        pipeline.prepare()
        results[jobs] = pipeline.run()
        stages = sorted(path.name for path in (tmp_path / f"jobs{jobs}" / "stages").iterdir())
        results[jobs]["stages"] = stages
        if jobs == 2:
            # the workers' lines reach the run's log; stages end out of order, so each end names its model (how much
            # the stages overlap depends on timing: benchmarks/RESULTS.md measures it, no test does)
            out = capfd.readouterr().out.splitlines()
            # ceilings, then per pair a twin, its conflicted student and three controls (placebo, random direction,
            # imitation), and the chain's intermediate student
            assert sum(line.startswith("training ") for line in out) == 3 + 2 * 5 + 1
            assert any(line.startswith("  tiny-l2 <- tiny-l1 (xent), seed 0: test accuracy") for line in out)
    assert results[2]["stages"] == results[1]["stages"]  # the same stages, under the same hashes
    assert len(results[2]["stages"]) == 3 + 2 + 11 + 2  # ceilings, labelings, students, data and report
    accuracies = {jobs: {key: model["accuracy"] for key, model in results[jobs]["models"].items()} for jobs in (1, 2)}
    assert accuracies[2] == accuracies[1] and len(accuracies[1]) == 3 + 2 * 5  # ceilings and the final students
    for key in accuracies[1]:  # one thread per worker against two: sums may round differently, nothing more
        scores = [pd.read_parquet(tmp_path / f"jobs{jobs}" / "predictions" / f"{key}.parquet") for jobs in (1, 2)]
        assert list(scores[0]["id"]) == list(scores[1]["id"])
        assert np.abs(scores[0]["margin"].to_numpy() - scores[1]["margin"].to_numpy()).max() < 1e-4
    # a run started on workers is finished by a sequential rerun without training anything
    capfd.readouterr()
    rerun = W2SPipeline(recipe_from_dict({**tiny_recipe, "output_dir": str(tmp_path / "jobs2")}))
    rerun.prepare()
    metrics = rerun.run()
    assert {key: model["accuracy"] for key, model in metrics["models"].items()} == accuracies[2]
    assert not [line for line in capfd.readouterr().out.splitlines() if line.startswith("training")]


def _workers(parent: int) -> list[int]:
    """The worker processes of `parent` (the spawned interpreters, not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and "spawn_main" in command and "resource_tracker" not in command:
            found.append(int(entry.name))
    return found


def _start_and_wait_for_a_stage(tiny_recipe, tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(tiny_recipe))
    run = subprocess.Popen(
        [sys.executable, "-m", "w2s_align", "run", str(path), "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # which takes Ctrl-C; a suite started in the background (`cmd &`) has SIGINT ignored, and children inherit it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(Path(tiny_recipe["output_dir"]).glob("stages/train-*")):
        time.sleep(0.2)  # a stage has begun: the workers are at work
    if not list(Path(tiny_recipe["output_dir"]).glob("stages/train-*")):
        run.kill()
        pytest.fail(f"no stage began within 120 s: {run.communicate()[1][-2000:]}")
    workers = _workers(run.pid)
    assert len(workers) == 2, "no worker processes found"
    return run, workers


def _outliving(pids: list[int], timeout: float) -> list[int]:
    """The processes of `pids` still running after up to `timeout` seconds (as soon as none is, an empty list)."""
    deadline = time.time() + timeout
    alive = pids
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc (Linux)")
def test_a_worker_that_dies_stops_the_run_with_one_line(tiny_recipe, tmp_path):
    run, workers = _start_and_wait_for_a_stage(tiny_recipe, tmp_path)
    os.kill(workers[0], signal.SIGKILL)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 2
    assert "Traceback" not in err
    assert "error: a worker process of --jobs 2 died (killed, or out of memory)" in err


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc (Linux)")
def test_ctrl_c_stops_the_workers_with_one_line(tiny_recipe, tmp_path):
    run, workers = _start_and_wait_for_a_stage(tiny_recipe, tmp_path)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C sends: every process of the foreground group
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130
    assert err.strip().splitlines()[-1].startswith("interrupted: w2s-align run stopped; run it again to resume")
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert not _outliving(workers, timeout=10), "a worker outlived the run"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc (Linux)")
def test_workers_end_when_the_main_process_is_killed(tiny_recipe, tmp_path):
    """A main process killed outright (no Ctrl-C reaches the workers, no pool shutdown): its workers stop within
    seconds instead of training on, unseen, until their stages end."""
    tiny_recipe["training"]["num_train_epochs"] = 500  # stages that would outlast the test by far
    run, workers = _start_and_wait_for_a_stage(tiny_recipe, tmp_path)
    run.kill()
    run.communicate(timeout=60)
    alive = _outliving(workers, timeout=30)
    for pid in alive:  # leave nothing behind if the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the workers outlived their main process"
    assert not list(Path(tiny_recipe["output_dir"]).glob("stages/train-*/DONE.json"))
