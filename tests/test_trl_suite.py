"""TRL's own reward and DPO trainer tests as the W2S trainers' specification (issue 26; `tests/trl_suite`).

The vendored TRL tests (`tests/data/trl_suite/upstream`) run with TRL's classes and with the W2S classes substituted,
over local stand-in models and datasets (nothing is fetched). Every test that passes with TRL's class must pass with
the W2S class, except the justified differences in `run.ALLOWED`. The comparison is marked slow (~4.5 min on one core
of 2, one test a file); the fast subset (`run.FAST`, ~1.5 min) is checked within it and runs by hand with
`python tests/trl_suite/run.py --fast` (a test of its own ran the same tests twice in `make test`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from trl_suite import run


@pytest.fixture(scope="module")
def trl_suite():
    return run


@pytest.fixture(scope="module")
def cache(trl_suite, tmp_path_factory) -> Path:
    """The stand-ins' cache: `W2S_TRL_SUITE_CACHE`, else the runner's default (kept between runs)."""
    return Path(os.environ.get("W2S_TRL_SUITE_CACHE", trl_suite.DEFAULT_CACHE))


def check(report: dict, trl_suite, expected: list[str] | None = None, file: str | None = None) -> None:
    runs = report["runs"]
    if expected is not None:  # every selected test ran under both classes (no id went stale)
        for name, run in runs.items():
            missing = sorted(set(expected) - set(run["tests"]))
            assert not missing, f"{name} run did not report {missing}"
    passed = [t for t, r in runs["trl"]["tests"].items() if r["outcome"] == "passed"]
    assert passed, "no test passed with TRL's own classes: the stand-ins are broken"
    unexpected = report["differences"]["unexpected"]
    assert not unexpected, "pass with TRL's class, fail with the W2S class:\n" + "\n".join(
        f"{d['test']} [{d['w2s']}]: {d['error']}" for d in unexpected
    )
    if file is not None:  # the whole file ran: an allowed difference of it that no longer occurs should leave the list
        allowed = {test for test in trl_suite.ALLOWED if test.startswith(file)}
        stale = sorted(allowed - {d["test"] for d in report["differences"]["allowed"]})
        assert not stale, f"allowed differences that no longer occur: {stale}"


# One test a file (reward ~1.5 min, DPO ~3.5 min on one core), so that xdist runs them side by side.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["dpo", "reward"])  # the longer first
def test_trl_suite_file(name, trl_suite, cache):
    file = trl_suite.FILES[name]
    report = trl_suite.suite(files=[name], cache=cache, log=lambda *a: None)
    check(report, trl_suite, file=file)
    # the fast subset (`run.py --fast`, by hand) ran within it, and holds tests TRL's class passes here (a sign the
    # stand-ins serve them); it is not run again as a test of its own
    fast = [test for test in trl_suite.FAST if test.startswith(file)]
    check(report, trl_suite, expected=fast)
    trl = report["runs"]["trl"]["tests"]
    assert sum(trl[test]["outcome"] == "passed" for test in fast) >= len(fast) - 1
