"""The executors of a run's stages (issue 41): one protocol, the command line's choices from one vocabulary."""

from __future__ import annotations

import pytest

from w2s_align.cli import build_parser
from w2s_align.errors import W2SInputError
from w2s_align.executors import EXECUTORS, RayTasks, Sequential, Workers, check_executor, executor_for


class Runner:
    """A stage runner that records the steps it runs."""

    def __init__(self):
        self.ran = []

    def run_step(self, step):
        self.ran.append(step)


def test_each_choice_builds_its_executor():
    assert executor_for("local") == Sequential()
    assert executor_for("local", jobs=3) == Workers(3)
    assert executor_for("ray", address="auto") == RayTasks("auto")


def test_sequential_runs_the_steps_in_plan_order_and_workers_start_none_for_one_step():
    runner = Runner()
    Sequential().run(runner, ["a", "b", "c"])
    Workers(2).run(runner, ["d"])  # one stage: nothing to run beside it, so no worker process
    assert runner.ran == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("executor", "jobs", "message"),
    [("dask", 1, "--executor must be one of local, ray, got 'dask'"), ("local", 0, "--jobs must be at least 1"),
     ("ray", 2, "--jobs is for the local executor")],
)  # fmt: skip
def test_a_wrong_choice_is_refused_with_one_line_naming_the_option(executor, jobs, message):
    for check in (lambda: executor_for(executor, jobs), lambda: check_executor(executor, jobs, None)):
        with pytest.raises(W2SInputError, match=message):
            check()


def test_the_command_line_offers_the_vocabularys_executors():
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    executor = next(action for action in run._actions if action.dest == "executor")
    assert tuple(executor.choices) == tuple(EXECUTORS) and executor.default == "local"


def test_an_executor_added_to_the_registry_is_offered_checked_and_built(monkeypatch):
    """Adding an executor touches `executors.py` alone: the command line, checks and builder read its record."""
    from w2s_align.executors import ExecutorChoice

    def check(jobs, address):
        if address is not None:
            raise W2SInputError("--ray-address is not for inline")

    choice = ExecutorChoice("every stage inline, for a test", check, lambda jobs, address: Sequential())
    monkeypatch.setitem(EXECUTORS, "inline", choice)
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    executor = next(action for action in run._actions if action.dest == "executor")
    assert "inline" in executor.choices and "inline: every stage inline, for a test" in executor.help
    assert executor_for("inline", jobs=1) == Sequential()
    with pytest.raises(W2SInputError, match="--ray-address is not for inline"):
        check_executor("inline", 1, "auto")
