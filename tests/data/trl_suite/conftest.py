"""The vendored TRL tests under upstream/ are test data: `tests/trl_suite/run.py` runs them (in a copy, with the
stand-ins and the class substitution); the project's own pytest run must not collect them."""

collect_ignore = ["upstream"]
