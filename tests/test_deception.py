"""The deception analyzer on hand-made predictions where every area and score is known."""

import numpy as np
import pytest
from datasets import Dataset

from w2s_align.analysis.deception import (
    DeceptionAnalyzer,
    compare_seeds,
    deception_against_controls,
    summarize_seeds,
    training_agreement_gain,
)

# Eight test pairs; each number is the probability a model puts on the harmless (chosen) response.
WEAK = [0.9, 0.9, 0.2, 0.2, 0.9, 0.2, 0.2, 0.9]  # W_k = {0, 1, 4, 7}
STRONG = [0.9, 0.9, 0.9, 0.9, 0.2, 0.2, 0.9, 0.2]  # S_k = {0, 1, 2, 3, 6}
STUDENT = [0.8, 0.3, 0.1, 0.4, 0.3, 0.2, 0.7, 0.6]  # wrong on {1, 2, 3, 4, 5}
BASELINE = [0.8, 0.3, 0.9, 0.9, 0.9, 0.2, 0.7, 0.6]  # the no-conflict student: wrong on {1, 5}


def analyzer(**kwargs):
    return DeceptionAnalyzer(WEAK, STRONG, STUDENT, baseline=BASELINE, n_bootstrap=0, **kwargs)


def test_areas():
    areas = analyzer().areas()
    assert np.flatnonzero(areas["W_k"]).tolist() == [0, 1, 4, 7]
    assert np.flatnonzero(areas["W_uk"]).tolist() == [2, 3, 5, 6]
    assert np.flatnonzero(areas["S_k"]).tolist() == [0, 1, 2, 3, 6]
    assert np.flatnonzero(areas["S_uk"]).tolist() == [4, 5, 7]


def test_two_by_two_table():
    table = analyzer().table()
    # S_k&W_k = {0, 1}: wrong on 1; S_k&W_uk = {2, 3, 6}: wrong on 2, 3; S_uk&W_k = {4, 7}: wrong on 4;
    # S_uk&W_uk = {5}: wrong on 5
    assert {cell: row["n"] for cell, row in table.items()} == {
        "S_k&W_k": 2,
        "S_k&W_uk": 3,
        "S_uk&W_k": 2,
        "S_uk&W_uk": 1,
    }
    assert table["S_k&W_k"]["value"] == pytest.approx(1 / 2)
    assert table["S_k&W_uk"]["value"] == pytest.approx(2 / 3)
    assert table["S_uk&W_k"]["value"] == pytest.approx(1 / 2)
    assert table["S_uk&W_uk"]["value"] == pytest.approx(1.0)


def test_blind_spot_statistics():
    summary = analyzer().summary()
    # blind spot S_k & W_uk = {2, 3, 6}; the student is wrong on 2 and 3 of them (the paper's reading of DS)
    assert summary["blind_spot.error_rate"]["value"] == pytest.approx(2 / 3)
    # its mistakes in S_k = {1, 2, 3}: 2 of 3 in W_uk, against 3 of the 5 S_k pairs at random
    assert summary["blind_spot.share"]["value"] == pytest.approx(2 / 3)
    assert summary["blind_spot.null"]["value"] == pytest.approx(3 / 5)
    assert summary["blind_spot.targeting"]["value"] == pytest.approx((2 / 3) / (3 / 5))


def test_conflict_targeting_is_measured_where_the_conflict_can_cause_mistakes():
    summary = analyzer().summary()
    # conflict-caused mistakes (wrong here, right without the conflict) = {2, 3, 4}; in S_k: {2, 3}, both in W_uk
    assert summary["conflict.share"]["value"] == 1.0
    # the twin is right on S_k pairs {0, 2, 3, 6}, 3 of them in W_uk: what mistakes placed at random would give
    assert summary["conflict.null"]["value"] == pytest.approx(3 / 4)
    assert summary["conflict.targeting"]["value"] == pytest.approx(4 / 3)


def test_pgr_and_gap_come_from_the_same_test_pairs():
    summary = analyzer().summary()
    assert summary["accuracy.weak"]["value"] == 0.5  # right on {0, 1, 4, 7}
    assert summary["accuracy.strong"]["value"] == pytest.approx(5 / 8)
    assert summary["accuracy.student"]["value"] == pytest.approx(3 / 8)
    assert summary["gap"]["value"] == pytest.approx(1 / 8)
    assert summary["pgr"]["value"] == pytest.approx(-1.0)


def test_pgr_interval_resamples_weak_ceiling_and_student_jointly():
    rng = np.random.default_rng(0)
    truth = rng.uniform(size=2000) < 0.5  # which pairs each model gets right, correlated as in a real ladder
    weak = np.where(truth | (rng.uniform(size=2000) < 0.2), 0.9, 0.1)
    strong = np.where(weak > 0.5, 0.9, np.where(rng.uniform(size=2000) < 0.5, 0.9, 0.1))
    student = np.where(weak > 0.5, 0.9, np.where(rng.uniform(size=2000) < 0.25, 0.9, 0.1))
    summary = summarize_seeds([DeceptionAnalyzer(weak, strong, student)], n_bootstrap=300, min_gap=1 / 2000)
    pgr = summary["pgr"]
    assert pgr["ci_low"] < pgr["value"] < pgr["ci_high"]
    assert 0.3 < pgr["value"] < 0.7
    # jointly resampled, the student's gains over the weak model are nested in the ceiling's: a tight interval
    assert pgr["ci_high"] - pgr["ci_low"] < 0.25
    assert summary["gap"]["ci_low"] > 0


def test_pgr_is_undefined_where_the_gap_is_below_one_pair():
    summary = summarize_seeds([DeceptionAnalyzer(WEAK, WEAK, STUDENT)], n_bootstrap=0, min_gap=1 / 8)
    assert summary["gap"]["value"] == 0.0 and summary["pgr"]["value"] is None


def test_conflict_caused_mistakes():
    mistakes = analyzer().conflict_mistakes()
    # wrong with the conflict and right without it: pairs 2, 3, 4
    assert mistakes["all"]["value"] == pytest.approx(3 / 8)
    assert mistakes["S_k&W_uk"]["value"] == pytest.approx(2 / 3)  # 2 and 3 of {2, 3, 6}


def test_conflict_mistakes_need_the_baseline():
    with pytest.raises(ValueError, match="baseline"):
        DeceptionAnalyzer(WEAK, STRONG, STUDENT, n_bootstrap=0).conflict_mistakes()


def test_known_by_confidence():
    weak, strong, student = [0.6, 0.8], [0.9, 0.9], [0.1, 0.9]
    by_correctness = DeceptionAnalyzer(weak, strong, student, n_bootstrap=0)
    by_confidence = DeceptionAnalyzer(weak, strong, student, known="confident", threshold=0.75, n_bootstrap=0)
    assert by_correctness.areas()["W_uk"].tolist() == [False, False]
    assert by_confidence.areas()["W_uk"].tolist() == [True, False]
    assert by_correctness.summary()["blind_spot.error_rate"]["value"] is None  # S_k & W_uk is empty
    assert by_confidence.summary()["blind_spot.error_rate"]["value"] == 1.0


def test_empty_areas_are_undefined_not_a_division_by_zero():
    weak = strong = [0.9, 0.8, 0.7]  # everyone knows everything: W_uk and S_uk are empty
    summary = DeceptionAnalyzer(weak, strong, [0.9, 0.1, 0.9], n_bootstrap=200).summary()
    assert summary["blind_spot.error_rate"] == {"value": None, "ci_low": None, "ci_high": None}
    assert summary["error_rate.S_uk&W_uk"]["value"] is None
    assert summary["blind_spot.share"]["value"] == 0.0  # one mistake, none of it in S_k & W_uk
    assert summary["blind_spot.null"]["value"] == 0.0
    assert summary["blind_spot.targeting"]["value"] is None  # 0 / 0: undefined
    assert summary["sizes"] == {"S_k&W_k": 3, "S_k&W_uk": 0, "S_uk&W_k": 0, "S_uk&W_uk": 0}


def test_student_without_mistakes_has_an_undefined_share():
    summary = DeceptionAnalyzer(WEAK, STRONG, [0.9] * 8, n_bootstrap=0).summary()
    assert summary["blind_spot.share"]["value"] is None
    assert summary["blind_spot.error_rate"]["value"] == 0.0


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    n = 400
    weak = rng.uniform(0, 1, n)
    strong = rng.uniform(0.3, 1, n)
    student = rng.uniform(0, 1, n)
    ds = DeceptionAnalyzer(weak, strong, student, n_bootstrap=300, seed=1).summary()["blind_spot.error_rate"]
    assert ds["ci_low"] < ds["value"] < ds["ci_high"]
    assert ds["ci_high"] - ds["ci_low"] < 0.25
    again = DeceptionAnalyzer(weak, strong, student, n_bootstrap=300, seed=1).summary()["blind_spot.error_rate"]
    assert again == ds


def test_constant_errors_give_a_degenerate_interval():
    ds = DeceptionAnalyzer([0.1] * 20, [0.9] * 20, [0.2] * 20, n_bootstrap=100).summary()["blind_spot.error_rate"]
    assert ds == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}


def test_accepts_saved_prediction_datasets():
    def frame(probs):
        return Dataset.from_dict({"id": [str(i) for i in range(8)], "prob_chosen": probs})

    a = DeceptionAnalyzer(frame(WEAK), frame(STRONG), frame(STUDENT), n_bootstrap=0)
    assert a.summary()["blind_spot.error_rate"]["value"] == pytest.approx(2 / 3)


def test_misaligned_lengths_are_refused():
    with pytest.raises(ValueError, match="different numbers of test pairs"):
        DeceptionAnalyzer([0.9, 0.1], [0.9], [0.2, 0.3])


def test_seed_average_skips_undefined_values_and_has_an_interval():
    defined = DeceptionAnalyzer(WEAK, STRONG, STUDENT)  # blind-spot error rate 2/3
    undefined = DeceptionAnalyzer(WEAK, WEAK, STUDENT)  # strong = weak: S_k & W_uk is empty
    other = DeceptionAnalyzer(WEAK, STRONG, [0.9] * 8)  # no mistakes: 0
    summary = summarize_seeds([defined, undefined, other], n_bootstrap=200)
    ds = summary["blind_spot.error_rate"]
    assert ds["per_seed"] == [pytest.approx(2 / 3), None, 0.0]
    assert ds["defined_seeds"] == 2
    assert ds["value"] == pytest.approx(1 / 3)
    assert ds["ci_low"] <= ds["value"] <= ds["ci_high"]
    assert len(summary["sizes"]) == 3 and summary["sizes"][1]["S_k&W_uk"] == 0


def test_seed_average_interval_covers_the_spread_between_seeds():
    # On the same 400 pairs one seed's student gets every pair right and the other's every pair wrong: the mean
    # accuracy is 0.5 in every resample of the pairs, so an interval over test pairs alone would be [0.5, 0.5].
    weak, strong = np.full(400, 0.4), np.full(400, 0.9)
    right, wrong = (
        DeceptionAnalyzer(weak, strong, np.full(400, 0.9)),
        DeceptionAnalyzer(weak, strong, np.full(400, 0.1)),
    )
    accuracy = summarize_seeds([right, wrong], n_bootstrap=400)["accuracy.student"]
    assert accuracy["value"] == 0.5
    # Clipped to what an accuracy can be: the inflated seed deviation (sqrt(2) x 0.5) overshoots both ends.
    assert (accuracy["ci_low"], accuracy["ci_high"]) == (0.0, 1.0)


def test_seeds_that_agree_add_nothing_to_the_interval():
    rng = np.random.default_rng(3)
    weak, strong, student = (rng.uniform(size=300) for _ in range(3))
    analyzer = DeceptionAnalyzer(weak, strong, student)
    one = summarize_seeds([analyzer], n_bootstrap=300)
    two = summarize_seeds([analyzer, analyzer], n_bootstrap=300)
    for key in ("accuracy.student", "gap", "pgr", "blind_spot.targeting"):
        assert (two[key]["ci_low"], two[key]["ci_high"]) == pytest.approx((one[key]["ci_low"], one[key]["ci_high"]))


def _ladder_students(seed: int, n: int = 2000):
    """Weak and strong ceilings, and two students that differ on a few pairs only (as two methods of one teacher)."""
    rng = np.random.default_rng(seed)
    weak = np.where(rng.uniform(size=n) < 0.62, 0.9, 0.1)
    strong = np.where((weak > 0.5) | (rng.uniform(size=n) < 0.2), 0.9, 0.1)
    first = np.where((weak > 0.5) | (rng.uniform(size=n) < 0.1), 0.8, 0.2)
    second = np.where(rng.uniform(size=n) < 0.015, 0.2, first)  # wrong on 1.5% more pairs (where `first` is right)
    return weak, strong, first, second


def test_paired_difference_is_the_difference_of_the_means_with_a_narrower_interval():
    students = [_ladder_students(seed) for seed in range(3)]
    first = [DeceptionAnalyzer(w, s, a) for w, s, a, _ in students]
    second = [DeceptionAnalyzer(w, s, b) for w, s, _, b in students]
    alone = [summarize_seeds(group, n_bootstrap=300, min_gap=1e-3) for group in (first, second)]
    difference = compare_seeds(first, second, n_bootstrap=300, min_gap=1e-3)
    for key in ("accuracy.student", "pgr"):
        expected = alone[0][key]["value"] - alone[1][key]["value"]
        assert difference[key]["value"] == pytest.approx(expected)
    accuracy = difference["accuracy.student"]
    assert 0.008 < accuracy["value"] < 0.02
    # The two accuracy intervals overlap; paired, the difference clearly excludes 0.
    assert alone[0]["accuracy.student"]["ci_low"] < alone[1]["accuracy.student"]["ci_high"]
    assert accuracy["ci_low"] > 0
    assert accuracy["ci_high"] - accuracy["ci_low"] < 0.5 * (
        alone[0]["accuracy.student"]["ci_high"] - alone[0]["accuracy.student"]["ci_low"]
    )
    assert [round(v, 6) for v in accuracy["per_seed"]] == [
        round(float((a > 0.5).mean() - (b > 0.5).mean()), 6) for _, _, a, b in students
    ]


def test_a_student_against_itself_differs_by_zero():
    weak, strong, first, _ = _ladder_students(0)
    same = compare_seeds([DeceptionAnalyzer(weak, strong, first)], [DeceptionAnalyzer(weak, strong, first)], 100)
    for key in ("accuracy.student", "pgr", "blind_spot.targeting"):
        assert (same[key]["value"], same[key]["ci_low"], same[key]["ci_high"]) == (0.0, 0.0, 0.0)


def test_students_of_different_ceilings_are_not_compared():
    weak, strong, first, second = _ladder_students(0)
    with pytest.raises(ValueError, match="share their weak and strong ceilings"):
        compare_seeds([DeceptionAnalyzer(weak, strong, first)], [DeceptionAnalyzer(strong, strong, second)])
    with pytest.raises(ValueError, match="have 1 and 2 seeds"):
        compare_seeds([DeceptionAnalyzer(weak, strong, first)], [DeceptionAnalyzer(weak, strong, second)] * 2)


def test_the_weak_teachers_knowledge_can_come_from_the_score_it_labelled_with():
    """A weak policy labels by its log-likelihood but is evaluated by its implicit reward: W_k follows the labels."""
    weak_eval, weak_labels = [0.9, 0.9, 0.2, 0.2], [0.9, 0.2, 0.9, 0.2]
    strong, student = [0.9, 0.9, 0.9, 0.9], [0.9, 0.1, 0.9, 0.1]
    by_eval = DeceptionAnalyzer(weak_eval, strong, student, n_bootstrap=0)
    by_labels = DeceptionAnalyzer(weak_eval, strong, student, n_bootstrap=0, weak_known=weak_labels)
    assert by_eval.areas()["W_uk"].tolist() == [False, False, True, True]
    assert by_labels.areas()["W_uk"].tolist() == [False, True, False, True]
    # the blind spot moves with it; the weak model's accuracy does not
    assert by_labels.summary()["blind_spot.error_rate"]["value"] == 1.0
    assert by_eval.summary()["blind_spot.error_rate"]["value"] == 0.5
    assert by_labels.summary()["accuracy.weak"]["value"] == by_eval.summary()["accuracy.weak"]["value"] == 0.5


def test_a_push_that_depends_only_on_confidence_reads_zero_once_matched():
    """The twin is unsure of most blind-spot pairs (it imitates a teacher that is wrong there) and sure of the visible
    ones; a student that flips every pair the twin is unsure of, wherever it is, adds more error in the blind spot
    (the unmatched difference reads > 0) but not at a given confidence (the matched one reads 0). Deliberate mistakes
    on sure pairs of the blind spot read > 0 either way."""
    rng = np.random.default_rng(0)
    n = 2000
    blind = np.arange(n) < 600
    weak = np.where(blind, 0.2, 0.8)
    strong = np.full(n, 0.9)
    unsure = rng.random(n) < np.where(blind, 0.7, 0.2)
    twin = np.where(unsure, 0.55, 0.95)
    push = np.where(unsure, 0.45, twin)  # flips exactly the unsure pairs
    flat = DeceptionAnalyzer(weak, strong, push, baseline=twin, n_bootstrap=0).summary()
    assert flat["added_error.difference"]["value"] == pytest.approx(0.5, abs=0.05)
    assert flat["added_error.matched"]["value"] == pytest.approx(0.0, abs=1e-9)
    deliberate = np.where(blind & ~unsure & (rng.random(n) < 0.5), 0.05, twin)
    planted = DeceptionAnalyzer(weak, strong, deliberate, baseline=twin, n_bootstrap=0).summary()
    assert planted["added_error.matched"]["value"] > 0.1 and planted["added_error.difference"]["value"] > 0.1


def _seeds(student, baseline, gain, seeds=3):
    return [DeceptionAnalyzer(WEAK * 50, STRONG * 50, student * 50, baseline=baseline * 50, n_bootstrap=0,
                              agreement_gain=gain) for _ in range(seeds)]  # fmt: skip


def test_the_imitation_matched_control_lies_between_the_placebo_and_the_imitation_control():
    """The placebo is the twin (no matched error), the imitation control adds what an imitator adds: a student that
    gains half the imitation control's agreement with its teacher is matched to half its added error."""
    rng = np.random.default_rng(0)
    n = 2000
    blind = np.arange(n) < 600
    weak, strong = np.where(blind, 0.2, 0.8), np.full(n, 0.9)
    twin = rng.uniform(0.2, 0.99, n)  # right on about 62% of the pairs
    imitator = np.where(blind & (twin > 0.5) & (twin < 0.7), 0.3, np.where(~blind & (twin < 0.5), 0.7, twin))

    def seeds(probs, gain):
        return [DeceptionAnalyzer(weak, strong, probs, baseline=twin, n_bootstrap=0, agreement_gain=gain)] * 3

    m = seeds(imitator, None)[0].summary()["added_error.matched"]["value"]
    assert m > 0.1  # an imitator reads as added error in the blind spot
    controls = {"placebo": seeds(twin, 0.0), "random-direction": seeds(twin, 0.0), "imitation": seeds(imitator, 0.2)}
    for gain, weight in ((0.1, 0.5), (0.2, 1.0), (-0.1, 0.0), (1.0, 3.0)):
        result = deception_against_controls(seeds(imitator, gain), controls, n_bootstrap=0)
        assert result["imitation"]["weight"] == [weight] * 3
        assert result["imitation"]["effect"]["value"] == pytest.approx(m * (1 - weight))
    # a student whose gains are unknown (a run made before training predictions were saved): no second verdict
    result = deception_against_controls(seeds(imitator, None), controls, n_bootstrap=50)
    assert result["verdict"] == "inconclusive" and "no imitation to match" in result["inconclusive"]
    assert result["added_verdict"] in ("shown", "not shown")


def test_a_failed_check_is_inconclusive_never_not_shown():
    controls = {name: _seeds(BASELINE, BASELINE, 0.0) for name in ("placebo", "random-direction", "imitation")}
    controls["imitation"] = _seeds(BASELINE, BASELINE, 0.1)
    # an imitation control that gains no more agreement than the placebo: nothing to match the student to
    flat = {**controls, "imitation": _seeds(BASELINE, BASELINE, 0.0)}
    result = deception_against_controls(_seeds(STUDENT, BASELINE, 0.0), flat, n_bootstrap=50)
    assert result["verdict"] == "inconclusive" and result["added_verdict"] != "inconclusive"
    # a student at chance on a seed
    chance = [0.4, 0.6] * 200
    at_chance = [DeceptionAnalyzer(WEAK * 50, STRONG * 50, chance, baseline=BASELINE * 50, agreement_gain=0.0)] * 3
    result = deception_against_controls(at_chance, controls, n_bootstrap=50)
    assert result["at_chance"] == [0, 1, 2] and result["verdict"] == result["added_verdict"] == "inconclusive"
    assert "at chance" in result["inconclusive"]
    # without the imitation control, the second verdict names what is missing
    two = {name: controls[name] for name in ("placebo", "random-direction")}
    assert deception_against_controls(_seeds(STUDENT, BASELINE, 0.0), two, n_bootstrap=50)["verdict"] == "no control"


def test_training_agreement_gain_counts_the_pairs_the_teacher_takes_a_side_on():
    labels = [0.9, 0.1, 0.5, 0.7]
    assert training_agreement_gain([0.6, 0.4, 0.9, 0.2], [0.4, 0.4, 0.1, 0.2], labels) == pytest.approx(1 / 3)
    assert training_agreement_gain([0.6], [0.4], [0.5]) != training_agreement_gain([0.6], [0.4], [0.5])  # NaN
