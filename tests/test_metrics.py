"""Accuracy, PGR and agreement from saved predictions."""

import pytest

from w2s_align.analysis.metrics import pgr


def test_undefined_pgr_is_reported_as_such():
    assert pgr(0.7, 0.7, 0.8) is None
    assert pgr(0.7, 0.69, 0.8) is None
    assert pgr(0.70, 0.705, 0.71, min_gap=0.01) is None
    assert pgr(0.6, 0.8, 0.65) == pytest.approx(0.25)
