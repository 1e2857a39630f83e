"""Run a weak-to-strong experiment from Python: a recipe (with overrides) through W2SPipeline, then its PGR table.

    python examples/run_pipeline.py recipes/quickstart.yaml seeds=[0] output_dir=runs/example-pipeline

The same as `w2s-align run RECIPE KEY=VALUE ...`, for a notebook or a script of your own: the run directory holds
the report, the metrics (typed in `w2s_align.analysis.schema`) and every model's per-example predictions.
"""

import sys

from w2s_align import W2SPipeline, load_recipe


def main(argv: list[str]) -> None:
    recipe = load_recipe(argv[0], argv[1:])  # KEY=VALUE overrides of any recipe field
    metrics = W2SPipeline(recipe, log=lambda line: None).run()
    print(f"{'student':48s} {'weak':>6s} {'strong':>7s} {'student':>8s} {'PGR':>7s}")
    for row in metrics["students"]:
        pgr = "noise" if row["gap_within_noise"] else f"{row['pgr']:.2f}" if row["pgr"] is not None else "n/a"
        accuracies = f"{row['weak_accuracy']:6.3f} {row['strong_accuracy']:7.3f} {row['student_accuracy']:8.3f}"
        print(f"{row['label']:48s} {accuracies} {pgr:>7s}")
    print(f"run directory: {recipe.run_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
