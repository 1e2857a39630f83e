"""Intervals of a seed mean measured on shared test pairs, calibrated for few seeds.

A statistic of a weak-to-strong run (an accuracy, a PGR, a deception effect) is averaged over `k` training seeds, all
evaluated on the same test pairs. Its noise has two parts: the test pairs (the same for every seed) and the training
seeds. The interval of the mean combines:

- a **pair part**, the percentile bootstrap of the seed mean over test pairs: each resample draws the test pairs once
  and every seed's models are measured on them ([`pair_weights`]);
- a **seed part**, the jackknife variance over seeds of the seed mean (for a plain mean it is `s^2 / k`, `s` the
  spread of the per-seed values, which share the test pairs and so differ by training alone);

into `estimate -/+ sqrt((z * pair sd)^2 + (t * seed sd)^2)`: each part's half-width at the nominal level, the seed
part's from Student's t with `k - 1` degrees of freedom (it is estimated from `k` values), the pair part's from the
normal (thousands of resamples). The pair part is read off each side of the percentile interval, so with one seed
(no seed part) the interval is exactly the percentile interval over test pairs; it then says how precisely that one
trained model was measured, not what another seed would give. With 3 seeds, where most of the spread comes from
seeds, t has 2 degrees of freedom and the interval is wide: that is what 3 seeds can say. (A percentile bootstrap over
3 seeds covers the true mean about 80% of the time at a nominal 95%. Welch-Satterthwaite degrees of freedom covered
91% in the simulation below, because they grow exactly when the seed spread happens to be small. This combination
covered 95-98% at 3 and at 5 seeds: `tests/test_intervals.py` checks at least 93%. Per-pair churn is counted in both
parts, so where the test pairs dominate it is a little conservative.)

Example:

```python
>>> import numpy as np
>>> from w2s_align.analysis.intervals import pair_weights, seed_mean_intervals
>>> scores = [np.array([1.0, 0.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0, 0.0])]  # two seeds, four test pairs
>>> weights = pair_weights(4, n_bootstrap=0, seed=0)  # the estimate alone
>>> per_seed = [{"accuracy": weights @ s / weights.sum(axis=1)} for s in scores]
>>> seed_mean_intervals(per_seed, confidence=0.95)["accuracy"]["value"]
0.75
```
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from ..errors import W2SInputError

# A statistic on every row of the pair weights (row 0: the estimate; the others: bootstrap resamples), NaN where it is
# undefined.
Rows = dict[str, np.ndarray]


# The most cells of [`pair_weights`] (1 + n_bootstrap resamples of n_pairs pairs), and the bytes each takes while they
# are drawn (the counts, their floats, the stacked weights): at most 1.2 GB.
MAX_RESAMPLED_PAIRS = 50_000_000
_BYTES_PER_CELL = 24


def check_bootstrap_size(n_pairs: int, n_bootstrap: int, where: str) -> None:
    """Refuse a bootstrap whose [`pair_weights`] would not fit in memory ([`MAX_RESAMPLED_PAIRS`]), before it is drawn.

    ```python
    >>> check_bootstrap_size(1000, 1000, "analysis.n_bootstrap")  # 24 MB: fine
    >>> check_bootstrap_size(1_000_000, 1000, "analysis.n_bootstrap")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    w2s_align.errors.W2SInputError: analysis.n_bootstrap: 1000 bootstrap resamples of 1000000 pairs take 22 GiB ...
    ```
    """
    cells = (1 + n_bootstrap) * n_pairs
    if cells > MAX_RESAMPLED_PAIRS:
        size = cells * _BYTES_PER_CELL / 2**30
        raise W2SInputError(
            f"{where}: {n_bootstrap} bootstrap resamples of {n_pairs} pairs take {size:.0f} GiB of memory; at most "
            f"{max(0, MAX_RESAMPLED_PAIRS // n_pairs - 1)} resamples for this many pairs"
        )


def pair_weights(n_pairs: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """`(1 + n_bootstrap, n_pairs)` weights of the test pairs: row 0 all ones (the estimate), each further row how
    often a bootstrap resample draws each pair. A statistic that is a ratio of sums over pairs is computed on every
    row at once as `weights @ values`."""
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_pairs, np.full(n_pairs, 1.0 / n_pairs), size=n_bootstrap) if n_bootstrap else None
    ones = np.ones((1, n_pairs))
    return ones if draws is None else np.vstack([ones, draws.astype(float)])


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """`numerator / denominator`, NaN where the denominator is 0 (an empty set: undefined, never 0)."""
    out = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=np.asarray(denominator) != 0)
    return out


def _nanmean(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a mean over no defined seed is NaN, as it should be
        return np.nanmean(values, axis=0)


def seed_mean_intervals(
    per_seed: list[Rows],
    confidence: float,
    derive: Callable[[Rows], Rows] = lambda rows: rows,
    bounds: Callable[[str], tuple[float, float]] = lambda key: (-math.inf, math.inf),
    min_draws: int = 10,
) -> dict[str, dict[str, Any]]:
    """The seed mean of each statistic with its interval (see the module docstring).

    Args:
        per_seed: seed i's statistics, each on every row of the same [`pair_weights`].
        confidence: coverage of the intervals.
        derive: adds the statistics computed from the seed means (e.g. PGR from the mean accuracies), on every row.
        bounds: the range each statistic can take; intervals are clipped to it.
        min_draws: fewest defined resamples for a pair part (an almost always undefined statistic gets no interval).

    Returns:
        For each statistic `{"value", "ci_low", "ci_high", "per_seed", "defined_seeds", "undefined_draws"}`: the
        mean over the seeds where it is defined (None if none is), its interval (None without resamples), its
        per-seed values, how many seeds define it, and the share of resamples where it is undefined (a PGR whose gap
        vanishes there, say).
    """
    keys = list(per_seed[0])
    stacked = {key: np.stack([np.asarray(stats[key], dtype=float) for stats in per_seed]) for key in keys}
    mean = derive({key: _nanmean(values) for key, values in stacked.items()})
    seeds = [derive({key: values[i, :1] for key, values in stacked.items()}) for i in range(len(per_seed))]
    # The estimate without each seed in turn, for the jackknife of the seed part.
    k = len(per_seed)
    leave_one_out = [
        derive({key: _nanmean(np.delete(values[:, :1], i, axis=0)) for key, values in stacked.items()})
        for i in range(k)
    ] if k > 1 else []  # fmt: skip
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    out: dict[str, dict[str, Any]] = {}
    for key, rows in mean.items():
        per_seed_values = [float(stats[key][0]) for stats in seeds]
        defined = [i for i, value in enumerate(per_seed_values) if not math.isnan(value)]
        estimate, draws = float(rows[0]), rows[1:]
        finite = draws[np.isfinite(draws)]
        low = high = None
        if not math.isnan(estimate) and len(finite) >= max(min_draws, len(draws) // 2):
            pair_low, pair_high = np.quantile(finite, [0.5 - confidence / 2, 0.5 + confidence / 2])
            below, above = (max(0.0, (estimate - pair_low) / z) ** 2, max(0.0, (pair_high - estimate) / z) ** 2)
            seed_var = _jackknife_variance([float(estimates[key][0]) for estimates in leave_one_out], defined)
            t = float(student_t.ppf(0.5 + confidence / 2, len(defined) - 1)) if seed_var else 0.0
            floor, ceiling = bounds(key)
            low = float(np.clip(estimate - math.sqrt(z**2 * below + t**2 * seed_var), floor, ceiling))
            high = float(np.clip(estimate + math.sqrt(z**2 * above + t**2 * seed_var), floor, ceiling))
        out[key] = {
            "value": None if math.isnan(estimate) else estimate,
            "ci_low": low,
            "ci_high": high,
            "per_seed": [None if math.isnan(value) else value for value in per_seed_values],
            "defined_seeds": len(defined),
            "undefined_draws": float(np.mean(~np.isfinite(draws))) if len(draws) else 0.0,
        }
    return out


def _jackknife_variance(leave_one_out: list[float], defined: list[int]) -> float:
    """Jackknife variance of a seed-mean estimate from its values without each seed that defines it (0 below 2)."""
    values = np.asarray([leave_one_out[i] for i in defined]) if len(defined) > 1 else np.zeros(0)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return 0.0
    return float((len(values) - 1) / len(values) * np.sum((values - values.mean()) ** 2))
