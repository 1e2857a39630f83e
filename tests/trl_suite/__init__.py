"""The harness that runs TRL's own trainer tests against the W2S classes (`run.py`; `tests/test_trl_suite.py`)."""
