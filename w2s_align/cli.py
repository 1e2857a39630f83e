"""The `w2s-align` command line.

```
w2s-align run RECIPE [KEY=VALUE ...]       # run a recipe; overrides such as data.gt_size=500 seeds=[0,1]
w2s-align plan RECIPE [KEY=VALUE ...]      # dry run: every stage the recipe implies, which are cached, pair counts
w2s-align analyze RUN_DIR [analysis.KEY=VALUE ...]   # recompute metrics, deception and plots from predictions
```

User mistakes (a bad recipe key, a missing column, a model that does not load...) print one line naming the file,
key or line at fault and exit with code 2, before any training.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from .errors import W2SInputError


def _quiet_libraries() -> None:
    """Keep library chatter (load reports, deprecation notices, progress bars) out of the run's output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")  # TRL's reference log-prob pass draws its own progress bar
    from .device import accelerator_available

    if not accelerator_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # else DeepSpeed, when installed, warns on import
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    # On CPUs with AVX512-BF16, bitsandbytes announces at import that an optional kernel package is missing; it falls
    # back to its own kernels, so the line is noise before every run (and not an error of the user's).
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(lambda record: "kernels-community" not in record.msg)


def _run(args: argparse.Namespace) -> int:
    from .pipeline import W2SPipeline
    from .recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    pipeline = W2SPipeline(recipe)
    pipeline.prepare()
    pipeline.run()
    return 0


def _plan(args: argparse.Namespace) -> int:
    from .cache import StageCache
    from .plan import build_plan
    from .recipe import load_recipe
    from .tasks import task_class

    recipe = load_recipe(args.recipe, args.overrides)
    plan = build_plan(recipe)
    for name in plan.tasks:
        task_class(name).check(recipe)
    print(plan.describe(StageCache(recipe.run_dir)))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from .analysis.report import analyze_run

    analyze_run(args.run_dir, args.overrides)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="w2s-align", description="Weak-to-strong alignment experiments on TRL.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="Run a recipe (cached stages are skipped).")
    run.add_argument("recipe", help="Path to a recipe YAML file, e.g. recipes/quickstart.yaml.")
    run.add_argument("overrides", nargs="*", help="KEY=VALUE overrides of any recipe field, e.g. data.gt_size=500.")
    run.set_defaults(handler=_run)
    plan = commands.add_parser("plan", help="Dry run: list the stages a recipe implies and which are cached.")
    plan.add_argument("recipe", help="Path to a recipe YAML file.")
    plan.add_argument("overrides", nargs="*", help="KEY=VALUE overrides, as for `run`.")
    plan.set_defaults(handler=_plan)
    analyze = commands.add_parser("analyze", help="Recompute metrics and the report from a run's predictions.")
    analyze.add_argument("run_dir", help="A run directory written by `w2s-align run`.")
    analyze.add_argument("overrides", nargs="*", help="analysis.KEY=VALUE, e.g. analysis.known=confident.")
    analyze.set_defaults(handler=_analyze)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return args.handler(args)
    except W2SInputError as error:
        from .distributed import is_main_process

        if is_main_process():  # every process stops; one message is enough
            print(f"error: {error}", file=sys.stderr)
        return 2
