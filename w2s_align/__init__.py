"""w2s_align: weak-to-strong alignment experiments on reward models, built on TRL.

```python
>>> from w2s_align import W2SRewardConfig, W2SRewardTrainer
```
"""

from .errors import W2SInputError
from .reward_trainer import W2SDataCollatorForPreference, W2SRewardConfig, W2SRewardTrainer

__version__ = "0.1.0"

__all__ = [
    "W2SDataCollatorForPreference",
    "W2SInputError",
    "W2SRewardConfig",
    "W2SRewardTrainer",
    "__version__",
]
