"""Student losses on pairwise preferences with soft labels.

A reward model scores the two responses of a pair; `delta = r(first) - r(second)` and `sigmoid(delta)` is the model's
probability that the first response is preferred. A soft label `p` is a supervisor's probability of the same event
(1.0 for a hard "first is better" label). Every loss here is a binary cross-entropy between `sigmoid(delta)` and a
target built from `p`:

- `xent`: the target is `p` itself (naive weak-to-strong training; with `p = 1` it is TRL's reward loss).
- `logconf` (auxiliary confidence loss, Burns et al. 2023): the target is `(1 - a) * p + a * h`, where `h` is the
  student's own prediction hardened to 0/1 at the threshold that gives it the weak labels' class balance, detached,
  and `a` ramps linearly from 0 to `aux_coef` over the first `warmup_frac` of training (then stays there).
- `product`: the target is proportional to `q^beta * p^alpha` with `q` the student's detached probability.

Example:

```python
>>> import torch
>>> from w2s_align.losses import xent_loss
>>> round(xent_loss(torch.tensor([0.0]), torch.tensor([1.0])).item(), 4)  # -log(0.5)
0.6931
```
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from .conflicts import explicit_conflict_loss

StudentLoss = Literal["xent", "logconf", "product"]
STUDENT_LOSSES: tuple[str, ...] = get_args(StudentLoss)
SoftLabelMode = Literal["smoothing", "weight"]
# The preference losses of the DPO trainer: DPO's sigmoid loss, and SimPO (a margin, no reference model).
PreferenceLoss = Literal["sigmoid", "simpo"]
PREFERENCE_LOSSES: tuple[str, ...] = get_args(PreferenceLoss)


def soft_bce(delta: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pair binary cross-entropy between `sigmoid(delta)` and `target`, computed from logits for stability."""
    return F.binary_cross_entropy_with_logits(delta.float(), target.float(), reduction="none")


def xent_loss(delta: torch.Tensor, soft_label: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against the soft labels."""
    return soft_bce(delta, soft_label).mean()


def aux_coef_at(step: int, total_steps: int, aux_coef: float, warmup_frac: float) -> float:
    """Weight of the student's own labels at optimizer step `step` of `total_steps`.

    Rises linearly from 0 at step 0 to `aux_coef` at `warmup_frac * total_steps`, then stays at `aux_coef`. (The
    reference implementation jumps from `warmup_frac * aux_coef` straight to `aux_coef`; this schedule is continuous.)
    """
    warmup_steps = warmup_frac * total_steps
    if warmup_steps <= 0:
        return aux_coef
    return aux_coef * min(1.0, step / warmup_steps)


def hardening_threshold(student_probs: torch.Tensor, positive_frac: float) -> torch.Tensor:
    """Threshold above which a fraction `positive_frac` of `student_probs` lies (the class-balanced quantile)."""
    level = min(max(1.0 - float(positive_frac), 0.0), 1.0)
    return torch.quantile(student_probs.float(), level)


def logconf_target(
    student_probs: torch.Tensor, soft_label: torch.Tensor, coef: float, threshold: torch.Tensor | float
) -> torch.Tensor:
    """`(1 - coef) * soft_label + coef * hardened`, with `hardened = student_probs >= threshold`, detached."""
    hardened = (student_probs.detach() >= threshold).float()
    return ((1.0 - coef) * soft_label.float() + coef * hardened).detach()


def logconf_loss(
    delta: torch.Tensor, soft_label: torch.Tensor, coef: float, threshold: torch.Tensor | float
) -> torch.Tensor:
    """Mean auxiliary confidence loss for one batch, given the current weight `coef` and hardening `threshold`."""
    target = logconf_target(torch.sigmoid(delta.detach().float()), soft_label, coef, threshold)
    return soft_bce(delta, target).mean()


def product_target(
    student_probs: torch.Tensor, soft_label: torch.Tensor, alpha: float = 1.0, beta: float = 1.0
) -> torch.Tensor:
    """Normalised `q^beta * p^alpha` for "first is preferred" against the same for "second", detached."""
    q = student_probs.detach().float().clamp(1e-6, 1 - 1e-6)
    p = soft_label.float().clamp(1e-6, 1 - 1e-6)
    first = q.pow(beta) * p.pow(alpha)
    second = (1 - q).pow(beta) * (1 - p).pow(alpha)
    return (first / (first + second)).detach()


def product_loss(delta: torch.Tensor, soft_label: torch.Tensor, alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    """Mean cross-entropy against the product target."""
    target = product_target(torch.sigmoid(delta.detach().float()), soft_label, alpha, beta)
    return soft_bce(delta, target).mean()


class HardeningBuffer:
    """Rolling window of recent student probabilities and soft labels, for the class-balanced threshold.

    The `logconf` threshold is a quantile, which one micro-batch of a few pairs cannot estimate. The buffer keeps the
    last `size` pairs seen (across micro-batches and, when the trainer gathers them, across processes) and computes
    the threshold from all of them.

    Example:

    ```python
    >>> import torch
    >>> buffer = HardeningBuffer(size=4)
    >>> buffer.add(torch.tensor([0.1, 0.9]), torch.tensor([1.0, 1.0]))
    >>> buffer.add(torch.tensor([0.4, 0.6]), torch.tensor([0.0, 0.0]))
    >>> buffer.positive_frac()  # half of the labels prefer the first response
    0.5
    >>> round(buffer.threshold().item(), 2)  # half of the probabilities lie above it
    0.5
    ```
    """

    def __init__(self, size: int = 256):
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._probs: deque[float] = deque(maxlen=size)
        self._labels: deque[float] = deque(maxlen=size)

    def add(self, student_probs: torch.Tensor, soft_label: torch.Tensor) -> None:
        self._probs.extend(student_probs.detach().float().flatten().cpu().tolist())
        self._labels.extend(soft_label.detach().float().flatten().cpu().tolist())

    def __len__(self) -> int:
        return len(self._probs)

    def positive_frac(self) -> float:
        """Fraction of labels in the window that prefer the first response: the weak labels' class balance.

        The reference code uses the mean soft label instead; with unconfident weak labels (all near 0.5) that mean is
        near 0.5 whatever the labels prefer, and hardening then flips the student's most confident predictions.
        """
        return sum(label > 0.5 for label in self._labels) / len(self._labels)

    def threshold(self) -> torch.Tensor:
        return hardening_threshold(torch.tensor(list(self._probs)), self.positive_frac())


def margin_bce(logits: torch.Tensor, target: torch.Tensor, gamma: float = 0.0) -> torch.Tensor:
    """Per-pair `-t log sigmoid(x - gamma) - (1 - t) log sigmoid(-x - gamma)`: BCE with a margin toward each side.

    With `gamma = 0` it is the binary cross-entropy between `sigmoid(x)` and `t`; with `t = 1` it is SimPO's
    `-log sigmoid(x - gamma)`.
    """
    logits, target = logits.float(), target.float()
    if gamma == 0:
        return soft_bce(logits, target)
    return target * F.softplus(gamma - logits) + (1 - target) * F.softplus(logits + gamma)


@dataclass
class StudentLossSettings:
    """Parameters of the student losses: the recipe's `loss:` block, and fields of both trainers' configs."""

    soft_label_mode: SoftLabelMode = field(
        default="smoothing",
        metadata={
            "help": "smoothing: the soft label is the target (label smoothing per pair); weight: the pair is oriented "
            "by the label and weighted by its confidence."
        },
    )
    aux_coef: float = field(
        default=0.5, metadata={"help": "logconf: final weight of the student's own hardened predictions."}
    )
    aux_warmup_frac: float = field(
        default=0.2, metadata={"help": "logconf/product: fraction of steps over which the student's weight ramps up."}
    )
    aux_buffer_size: int = field(
        default=256, metadata={"help": "logconf: recent pairs whose predictions set the hardening threshold."}
    )
    product_alpha: float = field(default=1.0, metadata={"help": "product: exponent of the weak probability."})
    product_beta: float = field(default=1.0, metadata={"help": "product: final exponent of the student probability."})


# The settings each student loss reads (a student's cache key holds these and no others).
LOSS_SETTINGS: dict[str, tuple[str, ...]] = {
    "xent": ("soft_label_mode",),
    "logconf": ("soft_label_mode", "aux_coef", "aux_warmup_frac", "aux_buffer_size"),
    "product": ("soft_label_mode", "aux_warmup_frac", "product_alpha", "product_beta"),
}


@dataclass
class StudentLossArguments(StudentLossSettings):
    """Weak-to-strong student-loss settings shared by `W2SRewardConfig` and `W2SDPOConfig` (a config mixin)."""

    student_loss: StudentLoss = field(
        default="xent", metadata={"help": "How soft labels are learned: xent, logconf or product."}
    )
    conflict_alpha: float = field(
        default=0.0,
        metadata={"help": "Explicit conflict: weight of the term rewarding a preference for `rejected` (0: off)."},
    )

    def __post_init__(self):
        if self.student_loss not in STUDENT_LOSSES:
            raise ValueError(f"student_loss must be one of {STUDENT_LOSSES}, got {self.student_loss!r}")
        if self.soft_label_mode not in get_args(SoftLabelMode):
            raise ValueError(f"soft_label_mode must be 'smoothing' or 'weight', got {self.soft_label_mode!r}")
        if hasattr(super(), "__post_init__"):
            super().__post_init__()


class StudentObjective:
    """The student loss of one trainer: targets from soft labels (with the logconf buffer), weights, and logs.

    `logits` is the model's preference logit for "chosen is better" (a reward difference, or DPO's
    `beta * (logratio_chosen - logratio_rejected)`); `step` / `max_steps` drive the warmup of the student's own weight.
    """

    def __init__(self, args: StudentLossArguments):
        self.args = args
        self.buffer = HardeningBuffer(args.aux_buffer_size)

    def target(self, logits, soft_label, step, max_steps, gather, logs) -> torch.Tensor:
        args = self.args
        if args.student_loss == "xent":
            return soft_label
        probs = torch.sigmoid(logits.detach().float())
        if args.student_loss == "product":
            beta = aux_coef_at(step, max_steps, args.product_beta, args.aux_warmup_frac)
            return product_target(probs, soft_label, args.product_alpha, beta)
        coef = aux_coef_at(step, max_steps, args.aux_coef, args.aux_warmup_frac)
        # The class-balanced quantile needs many predictions: pool them across processes and recent micro-batches.
        self.buffer.add(gather(probs), gather(soft_label.float()))
        threshold = self.buffer.threshold()
        logs["aux_coef"] = coef
        logs["hardening_threshold"] = threshold.item()
        return logconf_target(probs, soft_label, coef, threshold.to(probs.device))

    def loss(
        self,
        logits: torch.Tensor,
        soft_label: torch.Tensor,
        step: int,
        max_steps: int,
        training: bool,
        gather=lambda tensor: tensor,
        gamma: float = 0.0,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean loss of the batch and the values to log. In evaluation the target is the soft label itself."""
        logs: dict[str, float] = {}
        soft_label = soft_label.to(logits.device, torch.float32)
        target = self.target(logits, soft_label, step, max(max_steps, 1), gather, logs) if training else soft_label
        if self.args.soft_label_mode == "weight":
            weight = torch.maximum(target, 1 - target)
            per_pair = weight * margin_bce(logits, (target >= 0.5).float(), gamma)
        else:
            per_pair = margin_bce(logits, target, gamma)
        with torch.no_grad():
            logs["label_agreement"] = gather(((logits > 0) == (soft_label > 0.5)).float().mean()).mean().item()
            logs["soft_label_mean"] = gather(soft_label.mean()).mean().item()
            logs["loss_xent"] = gather(margin_bce(logits, soft_label, gamma).mean()).mean().item()
        return per_pair.mean(), logs

    def conflict(self, preference: torch.Tensor, training: bool, gather, logs: dict[str, float]) -> torch.Tensor:
        """The explicit conflict term of the batch (`w2s_align.conflicts.explicit_conflict_loss` on `preference`,
        the model's own "chosen is better" logit), logged as `loss_conflict`; zero in evaluation or without
        `conflict_alpha`."""
        if not training or self.args.conflict_alpha <= 0:
            return preference.new_zeros(())
        term = explicit_conflict_loss(preference, self.args.conflict_alpha)
        logs["loss_conflict"] = gather(term.detach()).mean().item()
        return term
