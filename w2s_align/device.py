"""Device-dependent training settings, derived rather than written into recipes.

A recipe runs unchanged on a laptop CPU and on a GPU node: bf16 is used where the accelerator supports it, and
activation checkpointing (which trades compute for memory) only where there is an accelerator whose memory it saves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch


def _accelerator() -> str | None:
    """The type of this machine's accelerator (`cuda`, `xpu`, `npu`, `mps`, ... as torch names it), or None."""
    if torch.accelerator.is_available():
        return torch.accelerator.current_accelerator().type
    return None


def accelerator_available(use_cpu: bool = False) -> bool:
    """Whether training will run on an accelerator (any torch knows: CUDA, XPU, NPU, MPS, ...) rather than the CPU."""
    return not use_cpu and _accelerator() is not None


def default_device() -> str:
    """Where this process places models to score: its own accelerator (`LOCAL_RANK` under a launcher, so that 8
    processes of one node use its 8 GPUs), else the CPU."""
    kind = _accelerator()
    if kind is None:
        return "cpu"
    return kind if kind == "mps" else f"{kind}:{int(os.environ.get('LOCAL_RANK', 0))}"


def bf16_supported(use_cpu: bool = False) -> bool:
    """Whether bf16 mixed precision is both supported and worth it: an accelerator with native bf16."""
    if use_cpu:
        return False
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return hasattr(torch, "xpu") and torch.xpu.is_available()


def derive_device_defaults(config) -> None:
    """Fill a TRL config's unset `bf16` and activation checkpointing from the device (before its `__post_init__`).

    Without an accelerator it also sets `use_cpu`, so that several processes on a CPU form one gloo process group
    instead of each believing it is alone.
    """
    if not accelerator_available():
        config.use_cpu = True
    if config.bf16 is None and not config.fp16:
        config.bf16 = bf16_supported(config.use_cpu)
    if config.activation_checkpointing is None and config.gradient_checkpointing is None:
        config.activation_checkpointing = accelerator_available(config.use_cpu)


@dataclass
class DeviceDefaults:
    """Mixin for TRL configs: `bf16` and activation checkpointing default to "derive from the device".

    Put it before the TRL config in the bases: `class MyConfig(DeviceDefaults, SFTConfig)`.
    """

    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision; derived from the device when unset."}
    )
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated alias of `activation_checkpointing`."}
    )

    def __post_init__(self):
        derive_device_defaults(self)
        super().__post_init__()


def match_adapter_dtype(model, bf16: bool) -> None:
    """TRL casts the trainable adapter weights of a quantized model to bf16 (the QLoRA recipe). Without bf16 mixed
    precision, e.g. on a CPU, the rest of the model computes in fp32: keep the trainable weights in fp32 too."""
    quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    if quantized and not bf16:
        for param in model.parameters():
            if param.requires_grad and param.dtype == torch.bfloat16:
                param.data = param.data.float()
