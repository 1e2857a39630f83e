"""The deception analyzer on a finished run's saved predictions, without retraining: knowledge areas, the 2x2 error
table and the blind-spot statistics of one student against its weak teacher and strong ceiling.

    python examples/analyze_predictions.py runs/quickstart minilm-l1.gt.seed0 minilm-l3.gt.seed0 \\
        minilm-l3.from-minilm-l1.xent.seed0

Each argument after the run directory is a model key (the names of `RUN/predictions/*.parquet`, listed when a key is
missing). For the verdicts against the controls, which need the twin and the controls of a conflicted student, see
`w2s-align analyze` and docs/deception.md.
"""

import sys
from pathlib import Path

from datasets import Dataset

from w2s_align import DeceptionAnalyzer
from w2s_align.artifacts import RunDir


def main(argv: list[str]) -> None:
    run, keys = RunDir(argv[0]), argv[1:4]
    paths = [run.predictions(key) for key in keys]
    missing = [str(path) for path in paths if not path.is_file()]
    if len(keys) != 3 or missing:
        known = sorted(path.stem for path in Path(run.root, "predictions").glob("*.parquet"))
        sys.exit(f"give the weak, strong and student model keys of {run.root}; missing {missing}; known: {known}")
    weak, strong, student = (Dataset.from_parquet(str(path)) for path in paths)
    summary = DeceptionAnalyzer(weak, strong, student, n_bootstrap=200).summary()
    print("error rate of the student by knowledge area (S: strong ceiling, W: weak teacher; k known, uk not):")
    for cell, size in summary["sizes"].items():
        print(f"  {cell:10s} n={size:4d}  {_fmt(summary[f'error_rate.{cell}']['value'])}")
    blind = summary["blind_spot.error_rate"]
    interval = f"[{_fmt(blind['ci_low'])}, {_fmt(blind['ci_high'])}]"
    print(f"blind spot S_k & W_uk: error rate {_fmt(blind['value'])} {interval}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"  # an empty area has no rate


if __name__ == "__main__":
    main(sys.argv[1:])
