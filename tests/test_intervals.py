"""The intervals of a seed mean cover what they claim at the seed counts the recipes use (checked by simulation)."""

import numpy as np
import pytest

from w2s_align.analysis.intervals import pair_weights, ratio, seed_mean_intervals


def _coverage(seeds: int, pair_sd: float, seed_sd: float, noise_sd: float, reps: int = 400, n: int = 200) -> float:
    """Share of simulated experiments whose 95% interval holds the true mean (0): each experiment draws test pairs
    (an effect per pair, shared by the seeds), training seeds (a shift per seed) and per-pair churn."""
    rng = np.random.default_rng([seeds, round(100 * pair_sd), round(100 * seed_sd)])
    covered = 0
    for rep in range(reps):
        pairs = rng.normal(0, pair_sd, n)
        weights = pair_weights(n, 200, rep)
        per_seed = []
        for _ in range(seeds):
            values = pairs + rng.normal(0, seed_sd) + rng.normal(0, noise_sd, n)
            per_seed.append({"mean": weights @ values / weights.sum(axis=1)})
        stat = seed_mean_intervals(per_seed, confidence=0.95)["mean"]
        covered += stat["ci_low"] <= 0 <= stat["ci_high"]
    return covered / reps


@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize(
    ("pair_sd", "seed_sd", "noise_sd"),
    [(1.0, 0.3, 1.0), (1.0, 0.0, 1.0), (0.3, 0.3, 0.3)],
    ids=["seeds-dominate", "pairs-only", "mixed"],
)
def test_nominal_95_percent_covers_at_least_93_percent(seeds, pair_sd, seed_sd, noise_sd):
    assert _coverage(seeds, pair_sd, seed_sd, noise_sd) >= 0.93


def test_one_seed_is_the_percentile_interval_over_test_pairs():
    rng = np.random.default_rng(0)
    values = rng.normal(0.3, 1.0, 300)
    weights = pair_weights(300, 500, seed=1)
    draws = weights @ values / weights.sum(axis=1)
    stat = seed_mean_intervals([{"mean": draws}], confidence=0.95)["mean"]
    assert stat["value"] == pytest.approx(values.mean())
    assert (stat["ci_low"], stat["ci_high"]) == pytest.approx(tuple(np.quantile(draws[1:], [0.025, 0.975])))


def test_three_seeds_widen_with_student_t():
    """Three seeds that disagree: the interval is the t interval of their mean (2 degrees of freedom), not the much
    narrower spread a bootstrap of three values gives."""
    per_seed = [{"mean": np.full(201, value)} for value in (-0.017, -0.006, -0.014)]  # no pair noise at all
    stat = seed_mean_intervals(per_seed, confidence=0.95)["mean"]
    mean, sd = np.mean([-0.017, -0.006, -0.014]), np.std([-0.017, -0.006, -0.014], ddof=1)
    half = 4.302653 * sd / np.sqrt(3)  # t(0.975, 2 df)
    assert (stat["ci_low"], stat["ci_high"]) == pytest.approx((mean - half, mean + half), abs=1e-6)
    assert stat["ci_high"] > 0  # what issue 24 found for "logconf lowers accuracy": within noise at 3 seeds


def test_undefined_statistics_are_counted_not_averaged_as_zero():
    per_seed = [{"rate": ratio(np.array([1.0, 1.0, 0.0]), np.array([2.0, 0.0, 0.0]))}]
    stat = seed_mean_intervals(per_seed, confidence=0.95, min_draws=1)["rate"]
    assert stat["value"] == 0.5 and stat["undefined_draws"] == 1.0 and stat["ci_low"] is None
