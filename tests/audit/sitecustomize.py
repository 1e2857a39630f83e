"""Run at the start of every Python process whose PYTHONPATH holds this folder (the launches of
tests/test_distributed.py): the write audit of write_audit.py."""

import write_audit  # noqa: F401
