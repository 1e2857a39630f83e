"""Compare two finished run directories of the same recipe, model by model: accuracies, the largest margin difference
over the shared test pairs, and per model the paired accuracy difference (the same test pairs and seeds) with the
package's interval of a seed mean (`w2s_align.analysis.intervals`): is a changed setting's effect within noise?

    python benchmarks/compare_runs.py runs/reference runs/changed [--atol 1e-4]

Prints one line per model and a verdict: "same" where every margin agrees within `--atol`, else the models whose
seed-mean accuracy differs beyond noise (the 95% interval over test pairs and seeds excludes 0), if any.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from w2s_align.analysis.intervals import pair_weights, seed_mean_intervals


def _predictions(run: Path, key: str) -> pd.DataFrame:
    return pd.read_parquet(run / "predictions" / f"{key}.parquet", columns=["id", "margin", "correct"]).set_index("id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("changed", type=Path)
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()
    models = {run: json.loads((run / "metrics.json").read_text())["models"] for run in (args.reference, args.changed)}
    shared = [key for key in models[args.reference] if key in models[args.changed]]
    if not shared:
        raise SystemExit("error: the two runs share no model")
    worst = 0.0
    correct: dict[str, list[np.ndarray]] = defaultdict(list)  # per model, each seed's changed - reference
    for key in shared:
        before, after = (models[run][key]["accuracy"] for run in (args.reference, args.changed))
        reference, changed = (_predictions(run, key) for run in (args.reference, args.changed))
        changed = changed.reindex(reference.index)
        gap = float(np.abs(reference["margin"] - changed["margin"]).max())
        worst = max(worst, gap)
        print(f"{key:<70} {before:.4f} {after:.4f}  max |margin difference| {gap:.2e}")
        difference = changed["correct"].to_numpy(float) - reference["correct"].to_numpy(float)
        correct[re.sub(r"\.seed\d+$", "", key)].append(difference)
    print(f"\n{len(shared)} models; largest margin difference {worst:.2e}")
    if worst <= args.atol:
        print(f"verdict: same (every margin within {args.atol:g})")
        return
    beyond = []
    for model, per_seed in correct.items():
        weights = pair_weights(len(per_seed[0]), n_bootstrap=1000, seed=0)
        rows = [{"accuracy": weights @ diff / weights.sum(axis=1)} for diff in per_seed]
        stat = seed_mean_intervals(rows, confidence=0.95)["accuracy"]
        noise = stat["ci_low"] <= 0 <= stat["ci_high"]
        print(f"  {model}: {stat['value']:+.4f} [{stat['ci_low']:+.4f}, {stat['ci_high']:+.4f}] over "
              f"{len(per_seed)} seed(s)" + (" (within noise)" if noise else ""))  # fmt: skip
        beyond += [] if noise else [model]
    print("verdict: " + ("accuracies within noise" if not beyond else "beyond noise: " + ", ".join(beyond)))


if __name__ == "__main__":
    main()
