"""w2s_align: weak-to-strong alignment experiments on reward models, DPO/SimPO policies and classifiers, built on TRL.

```python
>>> from w2s_align import W2SDPOConfig, W2SDPOTrainer, W2SRewardConfig, W2SRewardTrainer
>>> from w2s_align import DeceptionAnalyzer, W2SPipeline, load_recipe
>>> W2SPipeline(load_recipe("recipes/quickstart.yaml", ["output_dir=runs/api"])).run()  # doctest: +SKIP
```

Everything is imported on first use (as in TRL's own `__init__`), so the command line and the recipe loader start
without importing TRL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import W2SInputError

__version__ = "0.1.0"

_LAZY = {
    "DeceptionAnalyzer": ".analysis.deception",
    "SoftLabelCollator": ".collators",
    "W2SClassifierConfig": ".classifier_trainer",
    "W2SClassifierTrainer": ".classifier_trainer",
    "W2SPipeline": ".pipeline",
    "W2SDPOConfig": ".dpo_trainer",
    "W2SDPOTrainer": ".dpo_trainer",
    "W2SRewardConfig": ".reward_trainer",
    "W2SRewardTrainer": ".reward_trainer",
    "load_recipe": ".recipe_yaml",
}

if TYPE_CHECKING:
    from .analysis.deception import DeceptionAnalyzer
    from .classifier_trainer import W2SClassifierConfig, W2SClassifierTrainer
    from .collators import SoftLabelCollator
    from .dpo_trainer import W2SDPOConfig, W2SDPOTrainer
    from .pipeline import W2SPipeline
    from .recipe_yaml import load_recipe
    from .reward_trainer import W2SRewardConfig, W2SRewardTrainer


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DeceptionAnalyzer",
    "SoftLabelCollator",
    "W2SClassifierConfig",
    "W2SClassifierTrainer",
    "W2SDPOConfig",
    "W2SDPOTrainer",
    "W2SInputError",
    "W2SPipeline",
    "W2SRewardConfig",
    "W2SRewardTrainer",
    "__version__",
    "load_recipe",
]
