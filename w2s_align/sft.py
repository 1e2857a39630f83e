"""Supervised finetuning with TRL's SFTTrainer: the stage before DPO, and the pretraining of the offline LM ladder.

Example:

```python
>>> from w2s_align.sft import W2SSFTConfig
>>> W2SSFTConfig(output_dir="sft", report_to=[]).bf16  # derived from the device: False on a CPU
False
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer
from trl.trainer.utils import disable_dropout_in_model

from .device import DerivedDeviceDefaults
from .distributed import barrier, is_main_process
from .last_batch import LastBatchLabels
from .sampling import LengthGroupedTraining


@dataclass
class W2SSFTConfig(DerivedDeviceDefaults, SFTConfig):
    """TRL's `SFTConfig` with `bf16` and activation checkpointing derived from the device when unset, and TRL's
    `disable_dropout` of the DPO and reward configs (off by default, as in `SFTConfig`)."""

    disable_dropout: bool = field(
        default=False,
        metadata={
            "help": "Switch the model's dropout off: training then depends on the data, seed and global batches only, "
            "not on the number of processes (each draws its own dropout masks)."
        },
    )


class W2SSFTTrainer(LengthGroupedTraining, LastBatchLabels, SFTTrainer):
    """TRL's `SFTTrainer`; with `train_sampling_strategy="group_by_length"` its batches are grouped over one
    optimizer step's texts on all processes (transformers groups per process, so the global batches, and the model,
    would change with the number of processes), and an epoch's last step trains each text once
    ([`w2s_align.last_batch`])."""


def supervised_finetune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    args: W2SSFTConfig,
    save_to: str | Path | None = None,
) -> PreTrainedModel:
    """Train `model` on `dataset` (`text`, or `prompt`/`completion` for completion-only loss) and return it, saved
    with its tokenizer in `save_to` if given: through the trainer, on every process, so that DeepSpeed ZeRO-3
    gathers the partitioned weights (the main process writes)."""
    if args.disable_dropout:
        disable_dropout_in_model(model)
    trainer = W2SSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    if save_to is not None:
        trainer.save_model(str(save_to))
        if is_main_process():
            tokenizer.save_pretrained(str(save_to))
        barrier()  # the other processes read it next
    return trainer.model
