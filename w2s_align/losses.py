"""Student losses on pairwise preferences with soft labels.

A reward model scores the two responses of a pair; `delta = r(first) - r(second)` and `sigmoid(delta)` is the model's
probability that the first response is preferred. A soft label `p` is a supervisor's probability of the same event
(1.0 for a hard "first is better" label). Every loss here is a binary cross-entropy between `sigmoid(delta)` and a
target built from `p`:

- `xent`: the target is `p` itself (naive weak-to-strong training; with `p = 1` it is TRL's reward loss).
- `logconf` (auxiliary confidence loss, Burns et al. 2023): the target is `(1 - a) * p + a * h`, where `h` is the
  student's own prediction hardened to 0/1 at 0.5 (see [`harden`]), detached, and `a` ramps linearly from 0 to
  `aux_coef` over the first `warmup_frac` of training (then stays there).
- `product`: the target is proportional to `q^beta * p^alpha` with `q` the student's detached probability.
- `window` (confidence window, as in EleutherAI's `w2s`): the cross-entropy against `p` on the pairs where the student
  is still unsure, `max(q, 1 - q) < 0.5 + radius`, and nothing on the others (the mean is over the whole batch), so a
  student stops learning a weak label once it holds a view of its own.
- `min_entropy` (entropy minimisation): `(1 - a) * xent + a * H(q)`, with `H` the student's binary entropy and `a`
  ramped as for `logconf`: the auxiliary term pushes the student towards confident predictions on whichever side it
  already leans, where `logconf` pulls it towards its hardened labels. (EleutherAI's `w2s` has an `entropy` loss,
  logconf without the hardening: its target `(1 - a) * p + a * q` holds the student's own detached `q`, whose
  cross-entropy has zero gradient, so it trains exactly as `xent` scaled by `1 - a`, and is not offered here.)
- `kl`: the reverse KL divergence `KL(q || p)` from the student's probability to the soft label. (The forward
  `KL(p || q)` is `xent` minus a constant: the same gradient.) Its gradient in the logit `z`,
  `q (1 - q) (z - logit(p))`, fades as the student grows confident, so a confident student is pulled back less by a
  label it disagrees with than under `xent`. Soft labels are clipped to `[1e-6, 1 - 1e-6]`.

A pair and its swap (`delta -> -delta`, `p -> 1 - p`) are the same example, so every loss and target here is
invariant to swapping a pair's two responses, ties included: nothing can depend on which response is stored first.
The same losses train a binary classifier (`delta` its logit for class 1, `p` the probability of class 1): there the
swap is a flip of the labels, under which every loss is invariant too, `logconf` with the class-balance hardening of
Burns et al. ([`ClassBalanceHardening`]) in place of hardening at 0.5.

Example:

```python
>>> import torch
>>> from w2s_align.losses import xent_loss
>>> round(xent_loss(torch.tensor([0.0]), torch.tensor([1.0])).item(), 4)  # -log(0.5)
0.6931
```
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar, get_args

import torch
import torch.nn.functional as F

from .options import LOSS_SETTINGS, STUDENT_LOSSES, SoftLabelMode, StudentLoss, StudentLossSettings


def xent_loss(delta: torch.Tensor, soft_label: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against the soft labels."""
    return margin_bce(delta, soft_label).mean()


def aux_coef_at(step: int, total_steps: int, aux_coef: float, warmup_frac: float) -> float:
    """Weight of the student's own labels at optimizer step `step` of `total_steps`.

    Rises linearly from 0 at step 0 to `aux_coef` at `warmup_frac * total_steps`, then stays at `aux_coef`. (The
    reference implementation jumps from `warmup_frac * aux_coef` straight to `aux_coef`; this schedule is continuous.)
    """
    warmup_steps = warmup_frac * total_steps
    if warmup_steps <= 0:
        return aux_coef
    return aux_coef * min(1.0, step / warmup_steps)


def harden(probs: torch.Tensor) -> torch.Tensor:
    """Hard labels of pairwise probabilities: 1 above 0.5, 0 below, 0.5 at exactly 0.5 (no side is preferred).

    Burns et al. harden a classifier's predictions at the quantile that matches the weak labels' class balance. A pair
    has no class: with each pair counted in both orders the balance is exactly one half and that quantile is 0.5.
    (The balance of pairs as stored, the share of labels above 0.5, is an artifact of the storage order; with the
    ground truth's choice stored first it is the weak teacher's accuracy.)
    """
    probs = probs.float()
    return (probs > 0.5).float() + 0.5 * (probs == 0.5).float()


def logconf_target(
    student_probs: torch.Tensor, soft_label: torch.Tensor, coef: float, hard: torch.Tensor | None = None
) -> torch.Tensor:
    """`(1 - coef) * soft_label + coef * hard`, detached; `hard` defaults to `harden(student_probs)` (the pairwise
    rule; a classifier passes its [`ClassBalanceHardening`]'s)."""
    hard = harden(student_probs.detach()) if hard is None else hard.float()
    return ((1.0 - coef) * soft_label.float() + coef * hard).detach()


class ClassBalanceHardening:
    """Burns et al.'s hardening of a classifier's own predictions for `logconf`: the share `positive_share` of the
    predictions with the highest logits is hardened to 1, the others to 0, so that hardening keeps the weak labels'
    class balance instead of collapsing onto one class (a classifier, unlike a pair, has classes).

    The ranking covers the batch and the `window` predictions before it (a quantile over a micro-batch of a few
    examples is noise; the reference implementation ranks each batch alone: `window=0`). A prediction is hardened to 1
    when at least `(1 - positive_share) * n` of the `n` ranked ones are strictly below it, to 0 when at least
    `positive_share * n` are strictly above it, and to 0.5 when neither (the boundary): flipping every label
    (`logit -> -logit`, `positive_share -> 1 - positive_share`) flips every hardened label, ties included.

    Example:

    ```python
    >>> import torch
    >>> from w2s_align.losses import ClassBalanceHardening
    >>> hardening = ClassBalanceHardening(positive_share=0.25, window=0)
    >>> hardening(torch.tensor([2.0, -1.0, 0.5, 0.1])).tolist()  # one in four is a 1, though three logits are > 0
    [1.0, 0.0, 0.0, 0.0]
    ```
    """

    def __init__(self, positive_share: float, window: int = 256):
        if not 0.0 <= positive_share <= 1.0:
            raise ValueError(f"positive_share must be in [0, 1], got {positive_share}")
        if window < 0:
            raise ValueError(f"window must be 0 or more, got {window}")
        self.positive_share = positive_share
        self.window = window
        self._recent = torch.empty(0)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.detach().float()
        ranked = torch.cat([self._recent.to(logits.device), logits])
        self._recent = ranked[-self.window :].cpu() if self.window else torch.empty(0)
        below = (ranked[None, :] < logits[:, None]).sum(dim=1).float()
        above = (ranked[None, :] > logits[:, None]).sum(dim=1).float()
        n = ranked.numel()
        one = below >= (1 - self.positive_share) * n
        zero = above >= self.positive_share * n
        return torch.where(one, 1.0, torch.where(zero, 0.0, 0.5)).to(logits.device)


def logconf_loss(delta: torch.Tensor, soft_label: torch.Tensor, coef: float) -> torch.Tensor:
    """Mean auxiliary confidence loss for one batch, given the current weight `coef` of the student's own labels."""
    target = logconf_target(torch.sigmoid(delta.detach().float()), soft_label, coef)
    return margin_bce(delta, target).mean()


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
    return margin_bce(delta, target).mean()


def margin_bce(logits: torch.Tensor, target: torch.Tensor, gamma: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Per-pair `-t log sigmoid(x - gamma) - (1 - t) log sigmoid(-x - gamma)`: BCE with a margin toward each side.

    With `gamma = 0` it is the binary cross-entropy between `sigmoid(x)` and `t`; with `t = 1` it is SimPO's
    `-log sigmoid(x - gamma)`, and with a per-pair `gamma` TRL's reward loss with a `margin` column. A pair and its
    swap (`x -> -x`, `t -> 1 - t`, the same margin) have the same loss.

    Computed in `logits`' dtype from `logsigmoid`, stable at any magnitude: with `t = 1` it is TRL's expression to
    the last bit, in its gradient too (`1 * a + 0 * b` is `a` in any floating-point format), in bf16 as in fp32.
    """
    target = target.to(logits.dtype)
    return -(target * F.logsigmoid(logits - gamma) + (1 - target) * F.logsigmoid(-logits - gamma))


def explicit_conflict_loss(
    logits: torch.Tensor,
    conflict_label: torch.Tensor,
    alpha: float,
    trigger: torch.Tensor | None = None,
    gamma: float = 0.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """`alpha * mean_i c_i * BCE(sigmoid(logits_i), conflict_label_i)`, `c_i = 1` where the model already sides with
    the conflicting objective (the explicit conflict of Yang et al.; see [`w2s_align.conflicts`]). With a margin
    `gamma` (SimPO's, as in the paper's SimPO conflict) the term is `-log sigmoid(logit toward harmful - gamma)`.

    `logits` is the model's preference logit for `chosen` (a reward difference, DPO's implicit-reward difference),
    `conflict_label` the conflicting objective's preference for `chosen` (1.0: `chosen` is the harmful response).
    Which side the model is already on is the sign of `trigger` (default `logits`; DPO students pass their raw
    log-likelihood difference, as Yang et al. do). The term pushes the harmful response further up on exactly the
    pairs where it is already ahead. Swapping a pair (`logits`, `trigger` negated, `1 - conflict_label`) leaves it
    unchanged; a tie (`trigger == 0`) triggers nothing. `weight` turns the mean into a weighted sum ([`reduce_pairs`]).

    Example:

    ```python
    >>> import torch
    >>> from w2s_align.losses import explicit_conflict_loss
    >>> # `rejected` is the harmful response of both pairs (conflict label 0); pair 1 prefers the harmless response
    >>> # (no term), pair 2 already prefers the harmful one
    >>> round(explicit_conflict_loss(torch.tensor([1.0, -1.0]), torch.tensor([0.0, 0.0]), alpha=0.5).item(), 4)
    0.0783
    ```
    """
    trigger = logits if trigger is None else trigger
    harmful_first = conflict_label.float() > 0.5
    already = torch.where(harmful_first, trigger.detach() > 0, trigger.detach() < 0).to(logits.dtype)
    return alpha * reduce_pairs(already * margin_bce(logits, conflict_label, gamma), weight)


def reduce_pairs(per_pair: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """A batch's loss from its pairs' losses: their mean, or with `weight` their weighted sum (the last batch of an
    epoch on several processes, see [`w2s_align.last_batch`])."""
    return per_pair.mean() if weight is None else (per_pair * weight).sum()


def binary_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-pair entropy of `sigmoid(logits)` in nats, from the logits (exact at any magnitude)."""
    q = torch.sigmoid(logits)
    return q * F.softplus(-logits) + (1 - q) * F.softplus(logits)


def reverse_kl(logits: torch.Tensor, soft_label: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-pair `KL(sigmoid(logits) || soft_label)` in nats, the label clipped to `[eps, 1 - eps]`."""
    p = soft_label.to(logits.dtype).clamp(eps, 1 - eps)
    q = torch.sigmoid(logits)
    return q * (-F.softplus(-logits) - p.log()) + (1 - q) * (-F.softplus(logits) - (1 - p).log())


def window_mask(student_probs: torch.Tensor, radius: float) -> torch.Tensor:
    """1.0 for the pairs whose student confidence `max(q, 1 - q)` is below `0.5 + radius`, 0.0 for the others."""
    q = student_probs.detach().float()
    return (torch.maximum(q, 1 - q) < 0.5 + radius).float()


@dataclass
class StudentLossArguments(StudentLossSettings):
    """Weak-to-strong student-loss settings shared by `W2SRewardConfig` and `W2SDPOConfig` (a config mixin)."""

    student_loss: StudentLoss = field(
        default="xent",
        metadata={"help": "How soft labels are learned: xent, logconf, product, window, min_entropy or kl."},
    )
    conflict_alpha: float = field(
        default=0.0,
        metadata={"help": "Explicit conflict: weight of the term rewarding a preference for `rejected` (0: off)."},
    )
    float32_loss: bool = field(
        default=False,
        metadata={
            "help": "Compute the loss in float32 from the model's outputs when they are in bf16 or fp16 (TRL computes "
            "it in their dtype): a soft label's cross-entropy then keeps its precision. The pipeline turns it on."
        },
    )

    def __post_init__(self):
        if self.student_loss not in STUDENT_LOSSES:
            raise ValueError(f"student_loss must be one of {STUDENT_LOSSES}, got {self.student_loss!r}")
        if self.soft_label_mode not in get_args(SoftLabelMode):
            raise ValueError(f"soft_label_mode must be 'smoothing' or 'weight', got {self.soft_label_mode!r}")
        if self.student_loss == "kl" and self.soft_label_mode == "weight":
            raise ValueError("student_loss 'kl' learns the soft label itself: soft_label_mode 'weight' does not apply")
        if hasattr(super(), "__post_init__"):
            super().__post_init__()

    @classmethod
    def for_trainer(cls, args, model) -> StudentLossArguments:
        """The config a trainer trains with, from the `args` it was given: `args` itself when it is of this class;
        TRL's config that this class extends (`DPOConfig` for `W2SDPOConfig`) converted, every field as set there and
        the weak-to-strong fields at their defaults, so that code written for TRL's trainer runs unchanged; when
        None, the defaults with an output directory named after `model`, as TRL names it."""
        if args is None:
            model_name = model if isinstance(model, str) else model.config._name_or_path
            return cls(f"{model_name.split('/')[-1]}-{cls.__name__.removesuffix('Config')}")
        if isinstance(args, cls):
            return args
        trl_config = next(base for base in cls.__mro__ if base.__module__.split(".")[0] == "trl")
        if not isinstance(args, trl_config):
            raise TypeError(f"args must be a {cls.__name__} or a {trl_config.__name__}, got {type(args).__name__}")
        # The fields' values after TRL's `__post_init__` (`bf16` resolved, enums parsed) pass it again unchanged.
        return cls(**{f.name: getattr(args, f.name) for f in fields(args) if f.init})


class StudentLossRule:
    """One student loss as the objective applies it in training, reading only its settings (`LOSS_SETTINGS[name]`,
    the settings a student's cache key holds): its target from the soft label and the student's own prediction,
    its per-example loss against that target, and its reshaping of that loss. Subclasses, one a loss, are registered
    in [`STUDENT_LOSS_RULES`] under the loss's name.

    The base is `xent`'s rule: the soft label is the target of the cross-entropy ([`label_loss`]).
    """

    name: ClassVar[str] = "xent"

    def __init__(self, args: StudentLossArguments, hardening: ClassBalanceHardening | None = None):
        self.settings = {name: getattr(args, name) for name in LOSS_SETTINGS[self.name]}
        self.hardening = hardening

    def target(self, logits: torch.Tensor, soft_label: torch.Tensor, step: int, max_steps: int, logs) -> torch.Tensor:
        return soft_label

    def per_example(self, logits: torch.Tensor, target: torch.Tensor, gamma, oriented) -> torch.Tensor:
        return label_loss(logits, target, self.settings["soft_label_mode"], gamma, oriented)

    def reshape(self, per_example: torch.Tensor, logits: torch.Tensor, step: int, max_steps: int, logs):
        return per_example

    def ramp(self, step: int, max_steps: int, final: float, logs=None) -> float:
        """`final` ramped over the first `aux_warmup_frac` of the steps ([`aux_coef_at`]), logged as `aux_coef`."""
        coef = aux_coef_at(step, max_steps, final, self.settings["aux_warmup_frac"])
        if logs is not None:
            logs["aux_coef"] = coef
        return coef


class LogconfRule(StudentLossRule):
    """`logconf`: the soft label mixed with the student's hardened prediction ([`logconf_target`]; a classifier's
    hardening keeps the class balance, [`ClassBalanceHardening`])."""

    name = "logconf"

    def target(self, logits, soft_label, step, max_steps, logs):
        coef = self.ramp(step, max_steps, self.settings["aux_coef"], logs)
        hard = None if self.hardening is None else self.hardening(logits)
        return logconf_target(torch.sigmoid(logits.detach().float()), soft_label, coef, hard)


class ProductRule(StudentLossRule):
    """`product`: the normalised product of the student's and the weak probabilities ([`product_target`])."""

    name = "product"

    def target(self, logits, soft_label, step, max_steps, logs):
        beta = self.ramp(step, max_steps, self.settings["product_beta"])
        probs = torch.sigmoid(logits.detach().float())
        return product_target(probs, soft_label, self.settings["product_alpha"], beta)


class WindowRule(StudentLossRule):
    """`window`: the loss of the examples the student is still unsure of, nothing on the others ([`window_mask`])."""

    name = "window"

    def reshape(self, per_example, logits, step, max_steps, logs):
        mask = window_mask(torch.sigmoid(logits.detach().float()), self.settings["window_radius"])
        logs["window_share"] = mask.mean().item()
        return per_example * mask


class MinEntropyRule(StudentLossRule):
    """`min_entropy`: the loss mixed with the student's binary entropy ([`binary_entropy`])."""

    name = "min_entropy"

    def reshape(self, per_example, logits, step, max_steps, logs):
        coef = self.ramp(step, max_steps, self.settings["aux_coef"], logs)
        return (1 - coef) * per_example + coef * binary_entropy(logits)


class KLRule(StudentLossRule):
    """`kl`: the reverse KL divergence from the student's probability to the soft label ([`reverse_kl`])."""

    name = "kl"

    def per_example(self, logits, target, gamma, oriented):
        return reverse_kl(logits, target)


STUDENT_LOSS_RULES: dict[str, type[StudentLossRule]] = {
    rule.name: rule for rule in (StudentLossRule, LogconfRule, ProductRule, WindowRule, MinEntropyRule, KLRule)
}
assert tuple(STUDENT_LOSS_RULES) == STUDENT_LOSSES, "options.StudentLoss names the student losses"


def label_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    gamma: float | torch.Tensor = 0.0,
    oriented: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Per-example cross-entropy of `logits` against `target`: with the margin `gamma` toward each side
    ([`margin_bce`]), or, with `oriented` (each example's loss if its first response is the better one, and if its
    second is), their mix `t * first + (1 - t) * second`. `mode="weight"` orients each example by its hardened target
    and weighs it by the target's confidence `max(t, 1 - t)` instead."""
    if mode == "weight":
        confidence = torch.maximum(target, 1 - target)
        hard = harden(target).to(logits.dtype)
        if oriented is None:
            return confidence * margin_bce(logits, hard, gamma)
        return confidence * (hard * oriented[0] + (1 - hard) * oriented[1])
    if oriented is None:
        return margin_bce(logits, target, gamma)
    return target * oriented[0] + (1 - target) * oriented[1]


class StudentObjective:
    """The student loss of one trainer: targets from soft labels, weights, the explicit conflict term, and logs.

    `logits` is the model's preference logit for "chosen is better" (a reward difference, or DPO's
    `beta * (logratio_chosen - logratio_rejected)`), or a binary classifier's logit for class 1 (its soft label the
    probability of class 1; `hardening` its [`ClassBalanceHardening`]); `step` / `max_steps` drive the warmup of the
    student's own weight. The loss itself is its [`StudentLossRule`] (`STUDENT_LOSS_RULES[args.student_loss]`).
    """

    def __init__(self, args: StudentLossArguments, hardening: ClassBalanceHardening | None = None):
        self.args = args
        self.rule = STUDENT_LOSS_RULES[args.student_loss](args, hardening)

    @property
    def hardening(self) -> ClassBalanceHardening | None:
        """A classifier's `logconf` hardening; pairs harden at 0.5 ([`harden`])."""
        return self.rule.hardening

    def precision(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """`tensor` in the dtype the loss is computed in: float32 with `float32_loss`, else its own (TRL's rule)."""
        return tensor.float() if self.args.float32_loss and tensor is not None else tensor

    def loss(
        self,
        logits: torch.Tensor,
        soft_label: torch.Tensor,
        step: int,
        max_steps: int,
        training: bool,
        gather=lambda tensor: tensor,
        gamma: float | torch.Tensor = 0.0,
        weight: torch.Tensor | None = None,
        oriented: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of the batch (the mean over its pairs, or their `weight`ed sum) and the values to log. In evaluation
        the loss is the cross-entropy against the soft label itself ([`label_loss`]), whatever the student loss.

        The loss of a pair is the binary cross-entropy of `logits` against the target with the margin `gamma` toward
        each side ([`margin_bce`]: SimPO's margin, or each pair's `margin` of a reward dataset), or, with `oriented`
        (each pair's loss if its first response is the better one, and if its second is: another pairwise loss, e.g.
        one of TRL's DPO losses), their mix `t * first + (1 - t) * second` by the target `t`."""
        logs: dict[str, float] = {}
        logits = self.precision(logits)
        if oriented is not None:
            oriented = (self.precision(oriented[0]), self.precision(oriented[1]))
        soft_label = soft_label.to(logits.device, torch.float32)
        if training:
            steps = max(max_steps, 1)
            target = self.rule.target(logits, soft_label, step, steps, logs).to(logits.dtype)
            per_pair = self.rule.per_example(logits, target, gamma, oriented)
            per_pair = self.rule.reshape(per_pair, logits, step, steps, logs)
        else:
            per_pair = label_loss(logits, soft_label.to(logits.dtype), self.args.soft_label_mode, gamma, oriented)
        with torch.no_grad():
            agreement = (torch.sign(logits.detach()) == torch.sign(soft_label - 0.5)).float().mean()
            logs["label_agreement"] = gather(agreement).mean().item()
            logs["soft_label_confidence"] = gather(torch.maximum(soft_label, 1 - soft_label).mean()).mean().item()
            logs["loss_xent"] = gather(margin_bce(logits, soft_label, gamma).mean()).mean().item()
        return reduce_pairs(per_pair, weight), logs

    def conflict(
        self,
        logits: torch.Tensor,
        conflict_label: torch.Tensor | None,
        training: bool,
        gather,
        logs: dict[str, float],
        trigger: torch.Tensor | None = None,
        gamma: float = 0.0,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The explicit conflict term of the batch ([`explicit_conflict_loss`]), logged as `loss_conflict`; zero in
        evaluation or without `conflict_alpha`. `conflict_label` is the conflicting objective's preference for
        `chosen` (1.0 or 0.0), `trigger` the logit whose sign says which response the model already prefers (default
        `logits`), `gamma` SimPO's margin (0 otherwise), `weight` as in `loss`."""
        if not training or self.args.conflict_alpha <= 0:
            return logits.new_zeros(())
        if conflict_label is None:
            raise ValueError(
                "conflict_alpha > 0 needs a `conflict_label` column: which response the conflicting objective prefers"
            )
        conflict_label = conflict_label.to(logits.device, torch.float32)
        logits = self.precision(logits)
        term = explicit_conflict_loss(logits, conflict_label, self.args.conflict_alpha, trigger, gamma, weight)
        logs["loss_conflict"] = gather(term.detach()).mean().item()
        return term
