"""The student losses on hand-computed tensors."""

import math

import pytest
import torch

from w2s_align.losses import (
    StudentLossArguments,
    StudentObjective,
    aux_coef_at,
    binary_entropy,
    harden,
    logconf_loss,
    logconf_target,
    margin_bce,
    product_loss,
    product_target,
    reverse_kl,
    window_mask,
    xent_loss,
)
from w2s_align.options import STUDENT_LOSSES
from w2s_align.preference_losses import Side, pair_loss


def bce(p_model: float, target: float) -> float:
    return -(target * math.log(p_model) + (1 - target) * math.log(1 - p_model))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_xent_matches_hand_computed_cross_entropy():
    delta = torch.tensor([0.0, 2.0, -1.0])
    soft = torch.tensor([1.0, 0.7, 0.2])
    expected = (bce(0.5, 1.0) + bce(sigmoid(2.0), 0.7) + bce(sigmoid(-1.0), 0.2)) / 3
    assert xent_loss(delta, soft).item() == pytest.approx(expected, rel=1e-6)


def test_xent_with_hard_labels_is_trl_reward_loss():
    delta = torch.tensor([0.3, -1.2, 4.0])
    trl_loss = -torch.nn.functional.logsigmoid(delta).mean()
    assert xent_loss(delta, torch.ones(3)).item() == pytest.approx(trl_loss.item(), rel=1e-6)


def test_the_loss_is_trls_in_bf16_and_float32_only_when_asked():
    """TRL computes its loss in the outputs' dtype: so does the default, bit for bit with hard labels, gradient
    included; `float32_loss` computes it from the same outputs in float32 (the pipeline's choice for soft labels)."""
    logits = torch.tensor([0.3, -1.2, 4.0, 0.05], dtype=torch.bfloat16)
    x = logits.clone().requires_grad_()
    trl_loss = -torch.nn.functional.logsigmoid(x).mean()
    trl_loss.backward()
    for float32_loss in (False, True):
        y = logits.clone().requires_grad_()
        objective = StudentObjective(StudentLossArguments(float32_loss=float32_loss))
        loss, _ = objective.loss(y, torch.ones(4), step=0, max_steps=1, training=True)
        loss.backward()
        if float32_loss:
            assert loss.dtype == torch.float32 and loss.item() != trl_loss.item()
            expected = -torch.nn.functional.logsigmoid(logits.float()).mean()
            assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
        else:
            assert loss.dtype == torch.bfloat16 and torch.equal(loss, trl_loss) and torch.equal(y.grad, x.grad)


def test_margin_bce_is_stable_for_large_margins():
    loss = margin_bce(torch.tensor([80.0, -80.0]), torch.tensor([1.0, 1.0]))
    assert loss[0].item() == pytest.approx(0.0, abs=1e-12)
    assert loss[1].item() == pytest.approx(80.0, rel=1e-6)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.0), (10, 0.125), (20, 0.25), (39, 0.4875), (40, 0.5), (41, 0.5), (100, 0.5)],
)
def test_aux_coef_warms_up_linearly_then_stays(step, expected):
    # 200 steps, warmup over the first 20% = 40 steps, final coefficient 0.5.
    assert aux_coef_at(step, 200, aux_coef=0.5, warmup_frac=0.2) == pytest.approx(expected)


def test_aux_coef_has_no_jump_at_the_end_of_warmup():
    # The reference code jumps from warmup_frac * a_max to a_max; here consecutive steps differ by a_max / 40.
    values = [aux_coef_at(step, 200, 0.75, 0.2) for step in range(60)]
    assert max(b - a for a, b in zip(values, values[1:])) == pytest.approx(0.75 / 40)


def test_aux_coef_without_warmup_is_constant():
    assert aux_coef_at(0, 100, 0.5, 0.0) == 0.5


def test_harden_is_a_step_at_one_half_with_ties_at_one_half():
    assert harden(torch.tensor([0.1, 0.5, 0.51, 0.9])).tolist() == [0.0, 0.5, 1.0, 1.0]


def test_hardening_does_not_depend_on_the_labels_balance():
    # The previous rule hardened at the quantile of the share of labels above 0.5: with 3 of 4 labels preferring the
    # first response, the student's 0.3 (which prefers the second) was hardened to "first". Pairs have no balance.
    probs = torch.tensor([0.2, 0.3, 0.7, 0.9])
    target = logconf_target(probs, torch.tensor([0.6, 0.6, 0.6, 0.4]), coef=1.0)
    assert target.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_logconf_target_mixes_weak_labels_and_hardened_student():
    probs = torch.tensor([0.9, 0.2, 0.6])
    soft = torch.tensor([0.6, 0.6, 0.1])
    target = logconf_target(probs, soft, coef=0.5)
    # hardened = [1, 0, 1]
    assert target.tolist() == pytest.approx([0.8, 0.3, 0.55])


def test_logconf_loss_hand_computed():
    delta = torch.tensor([2.0, -1.0])
    soft = torch.tensor([0.7, 0.7])
    # student probs: 0.881, 0.269 -> hardened [1, 0]; coef 0.25 -> targets [0.775, 0.525]
    expected = (bce(sigmoid(2.0), 0.775) + bce(sigmoid(-1.0), 0.525)) / 2
    assert logconf_loss(delta, soft, coef=0.25).item() == pytest.approx(expected, rel=1e-6)


def test_logconf_with_zero_coef_is_xent():
    delta = torch.tensor([0.5, -0.3, 1.5])
    soft = torch.tensor([0.9, 0.4, 0.6])
    assert logconf_loss(delta, soft, 0.0).item() == pytest.approx(xent_loss(delta, soft).item())


def test_logconf_target_is_detached():
    delta = torch.tensor([1.0, -1.0], requires_grad=True)
    loss = logconf_loss(delta, torch.tensor([0.5, 0.5]), coef=0.5)
    loss.backward()
    # d/d delta of BCE(sigmoid(delta), t) = sigmoid(delta) - t with t = [0.75, 0.25], averaged over 2
    expected = [(sigmoid(1.0) - 0.75) / 2, (sigmoid(-1.0) - 0.25) / 2]
    assert delta.grad.tolist() == pytest.approx(expected, rel=1e-5)


def test_product_target_hand_computed():
    probs = torch.tensor([0.8])
    soft = torch.tensor([0.6])
    # first = 0.8 * 0.6 = 0.48, second = 0.2 * 0.4 = 0.08 -> 0.48 / 0.56
    assert product_target(probs, soft).item() == pytest.approx(0.48 / 0.56, rel=1e-5)
    # beta = 0: the target is the weak label alone
    assert product_target(probs, soft, alpha=1.0, beta=0.0).item() == pytest.approx(0.6, rel=1e-5)


def test_product_loss_hand_computed():
    delta = torch.tensor([math.log(4.0)])  # student prob 0.8
    expected = bce(0.8, 0.48 / 0.56)
    assert product_loss(delta, torch.tensor([0.6])).item() == pytest.approx(expected, rel=1e-5)


def test_margin_bce_is_simpo_with_hard_labels_and_bce_without_margin():
    x = torch.tensor([0.3, -1.0])
    hard = torch.ones(2)
    simpo = -torch.nn.functional.logsigmoid(x - 0.5)
    assert margin_bce(x, hard, gamma=0.5).tolist() == pytest.approx(simpo.tolist(), rel=1e-6)
    soft = torch.tensor([0.7, 0.2])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, soft, reduction="none")
    assert margin_bce(x, soft).tolist() == pytest.approx(bce.tolist(), rel=1e-6)
    # a soft label puts the margin on both sides: 0.7 * softplus(0.5 - 0.3) + 0.3 * softplus(0.3 + 0.5)
    expected = 0.7 * math.log(1 + math.exp(0.2)) + 0.3 * math.log(1 + math.exp(0.8))
    assert margin_bce(x[:1], soft[:1], gamma=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_a_per_pair_margin_is_trls_reward_margin_and_a_label_of_zero_the_swapped_pair():
    x, margin = torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.5, 1.5, 0.0])
    trl = -torch.nn.functional.logsigmoid(x - margin)  # TRL's reward loss with a `margin` column
    assert margin_bce(x, torch.ones(3), margin).tolist() == pytest.approx(trl.tolist(), rel=1e-6)
    assert margin_bce(-x, torch.zeros(3), margin).tolist() == pytest.approx(trl.tolist(), rel=1e-6)


def test_discopop_is_finite_read_either_way_where_trls_is():
    beta, tau = 0.1, 0.05
    delta = torch.tensor([-2000.0, -900.0, -1.0, 0.0, 3.0, 900.0, 2000.0], requires_grad=True)
    logits = beta * delta.detach()  # TRL 1.16's expression, NaN below a logit of -88 (inf x 0)
    modulation = torch.sigmoid(logits / tau)
    trl = -torch.nn.functional.logsigmoid(logits) * (1 - modulation) + torch.exp(-logits) * modulation

    def side(score):
        return Side(score=score, logratio=score, length=torch.ones_like(score))

    zero = torch.zeros_like(delta)
    ours = pair_loss("discopop", side(delta), side(zero), beta, discopop_tau=tau)
    other_way = pair_loss("discopop", side(zero), side(delta), beta, discopop_tau=tau)
    finite = torch.isfinite(trl)
    assert finite[-2:].all() and not finite[:2].any()  # TRL's own reading overflows below -88 only
    assert ours[finite].tolist() == pytest.approx(trl[finite].tolist(), rel=1e-6)
    assert torch.isfinite(ours).all() and torch.isfinite(other_way).all()
    assert ours[:2].tolist() == pytest.approx((-beta * delta[:2]).tolist(), rel=1e-6)  # the logistic part alone
    # A hard label reads each pair both ways (`t * first + (1 - t) * second`): its value and gradient stay finite.
    (1.0 * ours + 0.0 * other_way).sum().backward()
    assert torch.isfinite(delta.grad).all()


def test_weight_mode_orients_by_the_label_and_weights_by_confidence():
    args = StudentLossArguments(soft_label_mode="weight")
    logits = torch.tensor([1.0, -2.0])
    soft = torch.tensor([0.8, 0.3])  # prefers chosen with 0.8, rejected with 0.7
    loss, logs = StudentObjective(args).loss(logits, soft, step=0, max_steps=10, training=True)
    expected = (0.8 * bce(sigmoid(1.0), 1.0) + 0.7 * bce(sigmoid(-2.0), 0.0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert logs["label_agreement"] == 1.0 and logs["soft_label_confidence"] == pytest.approx(0.75)


def test_objective_in_evaluation_uses_the_soft_label_even_for_logconf():
    args = StudentLossArguments(student_loss="logconf")
    logits, soft = torch.tensor([0.5, -0.5]), torch.tensor([0.6, 0.9])
    loss, logs = StudentObjective(args).loss(logits, soft, step=5, max_steps=10, training=False)
    assert loss.item() == pytest.approx(xent_loss(logits, soft).item())
    assert "aux_coef" not in logs


@pytest.mark.parametrize("method", STUDENT_LOSSES)
@pytest.mark.parametrize("mode", ["smoothing", "weight"])
@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_every_student_loss_is_invariant_to_swapping_pairs(method, mode, gamma):
    if method == "kl" and mode == "weight":
        pytest.skip("kl learns the soft label itself (refused with weight, tested below)")
    # Swapping a pair's responses negates its logit and turns p into 1 - p; flipping a random subset of the batch
    # (including pairs whose label or logit is exactly a tie) must leave the loss and every logged value unchanged.
    generator = torch.Generator().manual_seed(0)
    logits = torch.cat([torch.randn(30, generator=generator) * 2, torch.zeros(2)])
    soft = torch.cat([torch.rand(30, generator=generator), torch.tensor([0.5, 0.9])])
    soft[:3] = 0.5
    flip = torch.rand(32, generator=generator) < 0.5
    sign = torch.where(flip, -1.0, 1.0)
    args = StudentLossArguments(student_loss=method, soft_label_mode=mode)
    for step in (0, 3, 10):
        loss, logs = StudentObjective(args).loss(logits, soft, step, 10, training=True, gamma=gamma)
        swapped, swapped_logs = StudentObjective(args).loss(
            sign * logits, torch.where(flip, 1 - soft, soft), step, 10, training=True, gamma=gamma
        )
        assert swapped.item() == pytest.approx(loss.item(), rel=1e-6)
        assert swapped_logs == pytest.approx(logs, rel=1e-6)


def test_explicit_conflict_term_is_invariant_to_swapping_pairs():
    generator = torch.Generator().manual_seed(1)
    logits = torch.cat([torch.randn(20, generator=generator), torch.zeros(1)])
    trigger = torch.cat([torch.randn(20, generator=generator), torch.zeros(1)])
    harmful_first = (torch.rand(21, generator=generator) < 0.5).float()
    flip = torch.rand(21, generator=generator) < 0.5
    sign = torch.where(flip, -1.0, 1.0)
    objective = StudentObjective(StudentLossArguments(conflict_alpha=0.5))
    term = objective.conflict(logits, harmful_first, True, lambda t: t, {}, trigger)
    swapped = objective.conflict(
        sign * logits, torch.where(flip, 1 - harmful_first, harmful_first), True, lambda t: t, {}, sign * trigger
    )
    assert term.item() > 0
    assert swapped.item() == pytest.approx(term.item(), rel=1e-6)


def test_explicit_conflict_needs_to_know_the_harmful_response():
    objective = StudentObjective(StudentLossArguments(conflict_alpha=0.5))
    with pytest.raises(ValueError, match="conflict_label"):
        objective.conflict(torch.zeros(2), None, True, lambda t: t, {})


def _objective(method: str, **settings) -> StudentObjective:
    return StudentObjective(StudentLossArguments(student_loss=method, aux_warmup_frac=0.0, **settings))


def test_window_learns_only_the_pairs_the_student_is_unsure_of():
    # confidences max(q, 1 - q): 0.5, 0.881, 0.574; radius 0.15 keeps the first and the last
    logits, soft = torch.tensor([0.0, 2.0, -0.3]), torch.tensor([1.0, 1.0, 0.0])
    assert window_mask(torch.sigmoid(logits), 0.15).tolist() == [1.0, 0.0, 1.0]
    loss, logs = _objective("window", window_radius=0.15).loss(logits, soft, 0, 10, training=True)
    assert loss.item() == pytest.approx((math.log(2) + math.log(1 + math.exp(-0.3))) / 3, rel=1e-6)  # 0.41584
    assert logs["window_share"] == pytest.approx(2 / 3)
    wide, _ = _objective("window", window_radius=0.5).loss(logits, soft, 0, 10, training=True)
    assert wide.item() == pytest.approx(xent_loss(logits, soft).item())  # a radius of 0.5 keeps every pair


def test_entropy_adds_the_students_entropy_with_the_ramped_weight():
    logits, soft = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.5])
    q = sigmoid(2.0)
    assert binary_entropy(logits).tolist() == pytest.approx(
        [math.log(2), -(q * math.log(q) + (1 - q) * math.log(1 - q))]
    )
    loss, logs = _objective("min_entropy", aux_coef=0.5).loss(logits, soft, 0, 10, training=True)
    expected = (0.5 * (math.log(2) + math.log(2)) + 0.5 * (bce(q, 0.5) + 0.36533)) / 2  # 0.71963
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert logs["aux_coef"] == 0.5
    # the entropy term pulls a student towards the side it leans to, whatever the label says
    logit = torch.tensor([0.4], requires_grad=True)
    _objective("min_entropy", aux_coef=1.0).loss(logit, torch.tensor([0.0]), 0, 10, training=True)[0].backward()
    assert logit.grad.item() < 0  # descending the loss raises the logit: more confident in "first"
    ramped = StudentObjective(StudentLossArguments(student_loss="min_entropy", aux_coef=0.5, aux_warmup_frac=0.5))
    assert ramped.loss(logits, soft, 0, 10, training=True)[1]["aux_coef"] == 0.0


def test_kl_is_the_reverse_divergence_to_the_soft_label():
    logits, soft = torch.tensor([0.0, 2.0]), torch.tensor([0.5, 0.7])
    q = sigmoid(2.0)
    by_hand = q * math.log(q / 0.7) + (1 - q) * math.log((1 - q) / 0.3)  # 0.092336
    assert reverse_kl(logits, soft).tolist() == pytest.approx([0.0, by_hand], abs=1e-6)
    loss, _ = _objective("kl").loss(logits, soft, 0, 10, training=True)
    assert loss.item() == pytest.approx(by_hand / 2, rel=1e-5)
    # its gradient in the logit is q (1 - q) (z - logit(p)): it fades as the student grows confident
    z = torch.tensor([2.0, 6.0], requires_grad=True)
    reverse_kl(z, torch.tensor([0.3, 0.3])).sum().backward()
    for value, grad in zip([2.0, 6.0], z.grad.tolist()):
        p = sigmoid(value)
        assert grad == pytest.approx(p * (1 - p) * (value - math.log(0.3 / 0.7)), rel=1e-4)
    assert z.grad[1] < z.grad[0]  # more confident and more wrong, yet pulled back less
    with pytest.raises(ValueError, match="soft_label_mode 'weight' does not apply"):
        StudentLossArguments(student_loss="kl", soft_label_mode="weight")


@pytest.mark.parametrize("method", ["window", "min_entropy", "kl"])
def test_the_new_losses_evaluate_against_the_soft_label(method):
    logits, soft = torch.tensor([0.5, -0.5]), torch.tensor([0.6, 0.9])
    loss, _ = _objective(method).loss(logits, soft, step=5, max_steps=10, training=False)
    assert loss.item() == pytest.approx(xent_loss(logits, soft).item())
