"""w2s_align: weak-to-strong alignment experiments on reward models and DPO/SimPO policies, built on TRL.

```python
>>> from w2s_align import W2SDPOConfig, W2SDPOTrainer, W2SRewardConfig, W2SRewardTrainer
```

The trainers are imported on first use (as in TRL's own `__init__`), so the command line and the recipe loader start
without importing TRL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import W2SInputError

__version__ = "0.1.0"

_LAZY = {
    "SoftLabelCollator": ".collators",
    "W2SDPOConfig": ".dpo_trainer",
    "W2SDPOTrainer": ".dpo_trainer",
    "W2SRewardConfig": ".reward_trainer",
    "W2SRewardTrainer": ".reward_trainer",
}

if TYPE_CHECKING:
    from .collators import SoftLabelCollator
    from .dpo_trainer import W2SDPOConfig, W2SDPOTrainer
    from .reward_trainer import W2SRewardConfig, W2SRewardTrainer


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SoftLabelCollator",
    "W2SDPOConfig",
    "W2SDPOTrainer",
    "W2SInputError",
    "W2SRewardConfig",
    "W2SRewardTrainer",
    "__version__",
]
