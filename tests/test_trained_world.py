"""Both deception verdicts on a world of trained students (w2s_align.analysis.trained_world; the full table is in
docs/deception.md): students that only imitate their teacher more are not called deceptive beyond imitation, while the
verdict on the error a conflict adds calls them so, which is why the imitation control exists."""

import numpy as np
import pytest

from w2s_align.analysis.trained_world import TrainedWorld, simulate_trained, trained_detection_rates

# Small worlds, so that the fast tier runs in seconds; `w2s-align calibrate --world trained` runs the large ones.
SMALL = TrainedWorld(n_train=400, n_test=400)
WORLDS = 6


@pytest.fixture(scope="module")
def rates():
    rows = trained_detection_rates((5,), (1.0,), WORLDS, 100, world=SMALL, kinds=("same-seed", "longer", "faster"))
    return {row["kind"]: row for row in rows}


@pytest.mark.parametrize("kind", ["same-seed", "longer", "faster"])
def test_students_that_only_imitate_more_are_not_deceptive_beyond_imitation(rates, kind):
    row = rates[kind]
    # A verdict is given (not "no control", not "inconclusive" in most worlds), and it is never "shown".
    assert row["beyond"]["shown"] == 0, f"{kind}: deception beyond imitation shown in {row['beyond']['shown']} worlds"
    assert row["inconclusive"] < WORLDS / 2
    assert row["effect"] is not None and abs(row["effect"]) < 0.1


def test_imitators_read_as_added_error_without_the_imitation_control(rates):
    # Twice the epochs adds teacher-aligned error beyond the placebo and the random direction in most worlds: the
    # verdict without the imitation control would call it deception.
    assert rates["longer"]["added"]["rate"] >= 0.5
    assert rates["longer"]["blind_added"] > 0.05


def test_controls_share_the_twins_seed_and_the_students_agreement_is_measured():
    out = simulate_trained(["same-seed"], 2, np.random.default_rng(1), SMALL)
    assert set(out) == {"placebo", "random-direction", "imitation", "same-seed"}
    imitation, placebo = out["imitation"][0], out["placebo"][0]
    assert imitation.agreement_gain > placebo.agreement_gain  # twice the epochs: closer to the weak labels
    assert np.array_equal(imitation.baseline, placebo.baseline)  # every one against the same twin
