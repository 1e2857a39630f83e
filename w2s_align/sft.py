"""Supervised finetuning with TRL's SFTTrainer: the stage before DPO, and the pretraining of the offline LM ladder.

Example:

```python
>>> from w2s_align.sft import W2SSFTConfig
>>> W2SSFTConfig(output_dir="sft", report_to=[]).bf16  # derived from the device: False on a CPU
False
```
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from .device import DeviceDefaults


@dataclass
class W2SSFTConfig(DeviceDefaults, SFTConfig):
    """TRL's `SFTConfig` with `bf16` and activation checkpointing derived from the device when unset."""


def supervised_finetune(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, args: W2SSFTConfig
) -> PreTrainedModel:
    """Train `model` on `dataset` (`text`, or `prompt`/`completion` for completion-only loss) and return it."""
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return trainer.model
