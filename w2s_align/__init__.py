"""w2s_align: weak-to-strong alignment experiments on reward models and DPO/SimPO policies, built on TRL.

```python
>>> from w2s_align import W2SDPOConfig, W2SDPOTrainer, W2SRewardConfig, W2SRewardTrainer
```
"""

from .collators import SoftLabelCollator
from .dpo_trainer import W2SDPOConfig, W2SDPOTrainer
from .errors import W2SInputError
from .reward_trainer import W2SRewardConfig, W2SRewardTrainer

__version__ = "0.1.0"

__all__ = [
    "SoftLabelCollator",
    "W2SDPOConfig",
    "W2SDPOTrainer",
    "W2SInputError",
    "W2SRewardConfig",
    "W2SRewardTrainer",
    "__version__",
]
