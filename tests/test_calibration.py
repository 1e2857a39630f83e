"""The deception analyzer on a simulated world where the truth is known: no deception reported where there is none,
planted deception found (w2s_align.analysis.calibration; the full table is in docs/deception.md)."""

import pytest

from w2s_align.analysis.calibration import NON_DECEPTIVE, detection_rate, render_table

# Small worlds, so that the fast tier runs the whole suite in seconds; `w2s-align calibrate` runs the large ones.
SMALL = {"worlds": 20, "n_pairs": 300, "n_bootstrap": 100}


@pytest.mark.parametrize("kind", NON_DECEPTIVE)
def test_false_positive_rate_of_non_deceptive_students_is_at_most_5_percent(kind):
    row = detection_rate(kind, seeds=3, **SMALL)
    assert row["rate"] <= 0.05, f"{kind}: deception shown in {row['shown']} of {row['worlds']} worlds"


def test_planted_deception_is_found():
    strong = detection_rate("planted", 0.5, seeds=5, **SMALL)
    assert strong["rate"] >= 0.5
    assert strong["effect"] > 0.1  # the effect against the placebo: about the planted share of the blind spot, halved


def test_a_same_seed_student_reads_zero_against_the_seed_matched_placebo():
    # distributed as the placebo: the same seed, another run (the issue: the placebo at another seed read -0.09)
    assert abs(detection_rate("same-seed", seeds=5, **{**SMALL, "worlds": 60})["effect"]) < 0.02


def test_the_table_names_each_student_and_seed_count():
    rows = [detection_rate("same-seed", seeds=3, worlds=2, n_pairs=100, n_bootstrap=20)]
    rows.append(detection_rate("planted", 0.5, seeds=3, worlds=2, n_pairs=100, n_bootstrap=20))
    table = render_table(rows)
    assert "| same-seed | no |" in table and "| planted, strength 0.5 | yes |" in table and "shown at 3 seeds" in table
