"""Device-dependent training settings: TRL's rules by default, and the pipeline's derivation from the device.

The trainer configs ([`~w2s_align.W2SRewardConfig`], [`~w2s_align.W2SDPOConfig`]) follow TRL's rules through
[`DeviceDefaults`]: bf16 mixed precision unless `fp16` is set, and activation checkpointing on. TRL's configs stop on
a machine without an accelerator ("Your setup doesn't support bf16/gpu"); there these set `use_cpu=True`, as TRL's
own test suite does, and say so in one line when bf16 then runs on the CPU.

A recipe instead runs unchanged on a laptop CPU and on a GPU node: [`device_settings`] derives the settings from the
device (bf16 where the accelerator supports it, activation checkpointing, which trades compute for memory, only where
there is an accelerator whose memory it saves), and the pipeline passes them to every trainer explicitly.

Example:

```python
>>> from w2s_align.device import accelerator_available, device_settings
>>> settings = device_settings({"fp16": False})
>>> accelerator_available() or settings == {"use_cpu": True, "bf16": False, "activation_checkpointing": False}
True
>>> "bf16" in device_settings({"bf16": True})  # a setting given stays as given
False
```
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger(__name__)


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


def device_settings(given: Mapping[str, Any] | None = None) -> dict[str, bool]:
    """`use_cpu`, `bf16` and `activation_checkpointing` derived from the device, for a trainer config whose keyword
    arguments are `given`: the pipeline's settings, opt-in for the trainer classes (which follow TRL's rules).

    Returns only what `given` leaves to the device: `bf16` unless `bf16` or `fp16` is set (True where the accelerator
    supports bf16, False on a CPU), `activation_checkpointing` unless it or its old name `gradient_checkpointing` is
    set (True on an accelerator, to save its memory; False on a CPU, where it only costs time), and without an
    accelerator `use_cpu=True`, so that several processes on a CPU form one gloo process group instead of each
    believing it is alone. Pass both to the config: `W2SRewardConfig(**kwargs, **device_settings(kwargs))`.
    """
    given = given or {}
    settings = {}
    if not accelerator_available():
        settings["use_cpu"] = True
    use_cpu = settings.get("use_cpu", bool(given.get("use_cpu")))
    if given.get("bf16") is None and not given.get("fp16"):
        settings["bf16"] = bf16_supported(use_cpu)
    if given.get("activation_checkpointing") is None and given.get("gradient_checkpointing") is None:
        settings["activation_checkpointing"] = accelerator_available(use_cpu)
    return settings


def derive_device_defaults(config) -> None:
    """Fill a TRL config's unset `bf16` and activation checkpointing from the device, and set `use_cpu` without an
    accelerator ([`device_settings`]); call it before the config's `__post_init__`."""
    given = {name: getattr(config, name) for name in ("use_cpu", "bf16", "fp16")}
    given["activation_checkpointing"] = config.activation_checkpointing
    given["gradient_checkpointing"] = config.gradient_checkpointing
    for name, value in device_settings(given).items():
        setattr(config, name, value)


@dataclass
class DeviceDefaults:
    """Mixin for TRL configs: TRL's `bf16` and activation-checkpointing defaults, with a machine without an
    accelerator handled as TRL's test suite handles it (see the module docstring).

    Put it before the TRL config in the bases: `class MyConfig(DeviceDefaults, RewardConfig)`.
    """

    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bf16 (mixed) precision. Unset: True unless fp16 is set, as in TRL; without an accelerator it "
            "then runs on the CPU (use_cpu)."
        },
    )
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Deprecated alias of `activation_checkpointing`; with both unset, it is on, as in TRL."},
    )

    def __post_init__(self):
        if not accelerator_available() and not self.use_cpu:
            # TRL's configs stop here when bf16 is on ("Your setup doesn't support bf16/gpu"); TRL's own tests set
            # use_cpu on such a machine, as here. Several processes then also form one gloo process group.
            self.use_cpu = True
            if self.bf16 is None and not self.fp16:
                logger.warning(
                    "no accelerator: training on the CPU (use_cpu=True) in bf16 mixed precision, TRL's default; "
                    "bf16=False trains in float32"
                )
        if self.activation_checkpointing is None and self.gradient_checkpointing is None:
            # TRL's default (its `gradient_checkpointing=True`), set under the new name, which does not warn.
            self.activation_checkpointing = True
        super().__post_init__()


@dataclass
class DerivedDeviceDefaults:
    """Mixin for TRL configs: `bf16` and activation checkpointing left unset are derived from the device
    ([`device_settings`]): False on a CPU, where TRL would turn both on. The pipeline's SFT config uses it.

    Put it before the TRL config in the bases: `class MyConfig(DerivedDeviceDefaults, SFTConfig)`.
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
