"""TRL's DPO losses (`DPOConfig.loss_type`) on a pair read either way, so that a soft label can weigh both readings.

TRL writes each loss for a pair whose `chosen` response is the better one. A weak label says only how likely that is,
and the student's target `t` (the label itself, or the `logconf`/`product` mix: `w2s_align.losses`) is a probability
too. The W2S DPO trainer's loss of a pair is `t * L(chosen over rejected) + (1 - t) * L(rejected over chosen)`
(`soft_label_mode="smoothing"`), or `L` of the pair oriented by the hardened target, weighted by its confidence
(`"weight"`). With a hard label (`t = 1`) that is TRL's loss; swapping a pair's responses (and `t -> 1 - t`) gives
the same loss, for every loss here.

`f_divergence_type` replaces each response's log-ratio by its divergence score before the loss, as in TRL.

`aot`, `aot_unpaired` and `sft` have no per-pair loss ([`UNPAIRED_LOSSES`] says why): [`batch_loss`] computes them as
TRL does, on pairs oriented by hard labels (0 or 1: a label of 0 reads the pair the other way round), and a soft label
is refused with them ([`refuse_soft_labels`]).

Example:

```python
>>> import torch
>>> from w2s_align.preference_losses import Side, pair_loss
>>> good = Side(score=torch.tensor([1.0]), logratio=torch.tensor([1.0]), length=torch.tensor([4]))
>>> bad = Side(score=torch.tensor([-1.0]), logratio=torch.tensor([-1.0]), length=torch.tensor([4]))
>>> round(pair_loss("hinge", good, bad, beta=0.1).item(), 4)  # relu(1 - beta * (1 - (-1)))
0.8
>>> round(pair_loss("hinge", bad, good, beta=0.1).item(), 4)  # the same pair read the other way
1.2
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# The losses of TRL's DPOTrainer that a soft label can weigh, each a function of one pair's two responses.
PAIR_LOSSES: tuple[str, ...] = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
)
# TRL's losses of a whole batch: available with hard labels, refused with soft ones, for these reasons.
UNPAIRED_LOSSES: dict[str, str] = {
    "aot": "AOT sorts the batch's log-ratio differences, so no loss belongs to one pair for a soft label to weigh",
    "aot_unpaired": "AOT sorts the batch's log-ratios, so no loss belongs to one pair for a soft label to weigh",
    "sft": (
        "TRL's sft term averages over all preferred responses' tokens of the batch, so no loss belongs to one pair "
        "for a soft label to weigh"
    ),
}


@dataclass
class Side:
    """One response of each pair in a batch: its divergence score, log-ratio to the reference, completion length, and
    for `aot` its log-probabilities under the policy and the reference."""

    score: torch.Tensor
    logratio: torch.Tensor
    length: torch.Tensor
    logps: torch.Tensor | None = None
    ref_logps: torch.Tensor | None = None


def f_divergence_score(logratio: torch.Tensor, kind: str, alpha: float = 1.0) -> torch.Tensor:
    """A response's score under TRL's `f_divergence_type`: `f'(pi / ref)` from its log-ratio `log(pi / ref)`."""
    if kind == "reverse_kl" or (kind == "alpha_divergence" and abs(alpha - 1.0) < 1e-6):
        return logratio
    if kind == "forward_kl":
        return 1 - torch.exp(-logratio)
    if kind == "js_divergence":
        return math.log(2) + F.logsigmoid(logratio)
    if kind == "alpha_divergence":
        scaled = (alpha - 1.0) * logratio
        # As TRL: clamp so that exp stays finite once cast back to the input's dtype.
        clamp = {torch.float16: 11.0, torch.bfloat16: 80.0, torch.float32: 80.0}[scaled.dtype]
        return (torch.exp(torch.clamp(scaled.float(), max=clamp)) - 1.0).to(scaled.dtype) / (alpha - 1.0)
    raise ValueError(f"unknown f_divergence_type {kind!r}")


def pair_loss(
    loss_type: str,
    better: Side,
    worse: Side,
    beta: float,
    label_smoothing: float = 0.0,
    discopop_tau: float = 0.05,
) -> torch.Tensor:
    """Per-pair loss of TRL's `loss_type` for pairs whose `better` response is preferred over `worse`."""
    delta = better.score - worse.score
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * delta)
    if loss_type == "hinge":
        return torch.relu(1 - beta * delta)
    if loss_type in ("ipo", "sigmoid_norm"):
        # Both average the scores over the completion tokens; IPO's target is 1 / (2 beta) (TRL's normalisation).
        average = better.score / better.length.clamp(min=1) - worse.score / worse.length.clamp(min=1)
        return (average - 1 / (2 * beta)) ** 2 if loss_type == "ipo" else -F.logsigmoid(beta * average)
    if loss_type == "exo_pair":
        epsilon = torch.tensor(label_smoothing, device=delta.device)
        logit = beta * delta
        return torch.sigmoid(logit) * (F.logsigmoid(logit) - torch.log1p(-epsilon)) + torch.sigmoid(-logit) * (
            F.logsigmoid(-logit) - torch.log(epsilon)
        )
    if loss_type == "robust":
        clean = -(1 - label_smoothing) * F.logsigmoid(beta * delta)
        flipped = -label_smoothing * F.logsigmoid(-beta * delta)
        return (clean - flipped) / (1 - 2 * label_smoothing)
    if loss_type == "discopop":
        logit = beta * delta
        modulation = torch.sigmoid(logit / discopop_tau)
        # TRL's `exp(-logit) * modulation` is inf x 0 = NaN below logit -88 (fp32): a pair read the other way round
        # gets there whenever TRL's reading exceeds 88. In one exponent the product is finite (for tau < 1, 0).
        exponential = torch.exp(F.logsigmoid(logit / discopop_tau) - logit)
        return -F.logsigmoid(logit) * (1 - modulation) + exponential
    # The rest read each response's log-ratio to the reference on its own.
    good, bad = beta * better.logratio, beta * worse.logratio
    if loss_type == "nca_pair":
        return -F.logsigmoid(good) - 0.5 * F.logsigmoid(-good) - 0.5 * F.logsigmoid(-bad)
    if loss_type == "bco_pair":
        return -F.logsigmoid(good) - F.logsigmoid(-bad)
    if loss_type == "sppo_hard":
        return (better.logratio - 0.5 / beta) ** 2 + (worse.logratio + 0.5 / beta) ** 2
    if loss_type == "apo_zero":
        return 1 - torch.sigmoid(good) + torch.sigmoid(bad)
    if loss_type == "apo_down":
        return torch.sigmoid(good) + 1 - torch.sigmoid(good - bad)
    if loss_type in UNPAIRED_LOSSES:
        raise ValueError(f"loss_type {loss_type!r} has no per-pair form: {UNPAIRED_LOSSES[loss_type]}")
    raise ValueError(f"unknown loss_type {loss_type!r}; one of {PAIR_LOSSES}")


def batch_loss(
    loss_type: str,
    better: Side,
    worse: Side,
    beta: float,
    label_smoothing: float = 0.0,
    better_tokens: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """TRL's loss of a batch for `loss_type` `aot`, `aot_unpaired` or `sft`, the mean TRL takes, for pairs whose
    `better` response is preferred over `worse`. `sft` reads `better_tokens`: the better responses' per-token
    log-probabilities and completion mask."""
    if loss_type == "sft":
        logps, mask = better_tokens
        return -logps[mask.bool()].mean()
    if loss_type == "aot":
        logratios, _ = torch.sort(better.logps - worse.logps, dim=0)
        ref_logratios, _ = torch.sort(better.ref_logps - worse.ref_logps, dim=0)
        delta = logratios - ref_logratios
    elif loss_type == "aot_unpaired":
        delta = torch.sort(better.logratio, dim=0)[0] - torch.sort(worse.logratio, dim=0)[0]
    else:
        raise ValueError(f"loss_type {loss_type!r} is not a batch loss: one of {list(UNPAIRED_LOSSES)}")
    per_position = -F.logsigmoid(beta * delta) * (1 - label_smoothing) - F.logsigmoid(-beta * delta) * label_smoothing
    return per_position.mean()


def refuse_soft_labels(loss_types: list[str], labels, where: str) -> None:
    """Raise a `ValueError` if `labels` (a dataset column or a batch's tensor) holds a soft label, anything but 0 and
    1, while `loss_types` holds a loss without a per-pair form ([`UNPAIRED_LOSSES`]): there is no pair's loss for it to
    weigh. Hard labels pass: a label of 0 reads its pair the other way round."""
    unpaired = [loss for loss in loss_types if loss in UNPAIRED_LOSSES]
    if not unpaired:
        return
    labels = torch.as_tensor(labels, dtype=torch.float32)
    soft = labels[(labels != 0) & (labels != 1)]
    if soft.numel():
        loss = unpaired[0]
        raise ValueError(
            f"{where} has soft labels (e.g. {soft[0].item():g}), which loss_type {loss!r} cannot weigh: "
            f"{UNPAIRED_LOSSES[loss]}. Give hard labels (0 or 1) or use losses with a per-pair form: {PAIR_LOSSES}"
        )


__all__ = [
    "PAIR_LOSSES",
    "UNPAIRED_LOSSES",
    "Side",
    "batch_loss",
    "f_divergence_score",
    "pair_loss",
    "refuse_soft_labels",
]
