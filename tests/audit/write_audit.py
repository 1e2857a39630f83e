"""A trail of every artifact w2s_align writes, for the tests that count who writes what (tests/test_distributed.py):
an audit hook (PEP 578) on the renames that end an atomic write (`w2s_align.artifacts`: a `.NAME.*.tmp` file renamed
onto NAME) appends `RANK<tab>PATH` to the file `$W2S_ALIGN_WRITE_LOG` names; nothing without that variable.

Installed in the test session by tests/conftest.py, and in the processes a test launches by the `sitecustomize.py`
beside this file (the launch puts this folder on their PYTHONPATH), so that the package itself holds no test code.
"""

import os
import sys


def _log_atomic_write(event: str, args: tuple) -> None:
    if event != "os.rename" or not os.environ.get("W2S_ALIGN_WRITE_LOG"):
        return
    source, target = os.fspath(args[0]), os.fspath(args[1])
    if os.path.basename(source).startswith(f".{os.path.basename(target)}.") and source.endswith(".tmp"):
        with open(os.environ["W2S_ALIGN_WRITE_LOG"], "a", encoding="utf-8") as handle:
            handle.write(f"{os.environ.get('RANK', '0')}\t{target}\n")


sys.addaudithook(_log_atomic_write)
