"""Coverage of the reported accuracy intervals at small test splits: the reason for `plan.MIN_TEST_PAIRS`.

For each test-split size n and true accuracy p, draws `--worlds` test splits (each pair correct with probability p),
computes the interval the report prints (`analysis.results.accuracy_interval`, one seed) and counts how often it holds
p. Usage: `python benchmarks/bootstrap_coverage.py [--worlds 1000] [--bootstrap 400] [--seed 0]`.
"""

import argparse

import numpy as np

from w2s_align.analysis.results import accuracy_interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=1000)
    parser.add_argument("--bootstrap", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    accuracies = (0.6, 0.75, 0.9)
    se = (0.95 * 0.05 / args.worlds) ** 0.5
    print(f"coverage of 95% intervals, {args.worlds} worlds a cell (Monte Carlo standard error {se:.3f} at 0.95)")
    print("| test pairs | " + " | ".join(f"accuracy {p}" for p in accuracies) + " |")
    print("| --- |" + " --- |" * len(accuracies))
    for n in (5, 10, 20, 30, 50, 100):
        cells = []
        for p in accuracies:
            held = 0
            for _ in range(args.worlds):
                probs = np.where(rng.random(n) < p, 0.9, 0.1)  # a correct pair's prob_chosen is above 0.5
                interval = accuracy_interval([probs], args.bootstrap, 0.95)
                held += interval["ci_low"] <= p <= interval["ci_high"]
            cells.append(f"{held / args.worlds:.3f}")
        print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
