"""The `w2s-align` command line.

```
w2s-align run RECIPE [KEY=VALUE ...]       # run a recipe; overrides such as data.gt_size=500 seeds=[0,1]
w2s-align plan RECIPE [KEY=VALUE ...]      # dry run: every stage the recipe implies, which are cached, pair counts
w2s-align analyze RUN_DIR [analysis.KEY=VALUE ...]   # recompute metrics, deception and plots from predictions
w2s-align calibrate [--world both] [--seeds 3 5]     # the deception verdicts on a simulated and a trained world:
                                                     # false positives and power (the tables of docs/deception.md)
w2s-align reward --config CFG [--KEY VALUE ...]   # train one reward model, TRL-style (w2s_align.trainer_cli)
w2s-align dpo --config CFG [--KEY VALUE ...]      # train one DPO/SimPO policy, TRL-style
w2s-align env                              # versions and devices, to paste into a bug report
w2s-align --version
```

User mistakes (a bad recipe key, a missing column, a model that does not load...) print one line naming the file,
key or line at fault and exit with code 2, before any training.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from pathlib import Path

from .errors import W2SInputError, storage_problem
from .executors import EXECUTORS, check_executor


def _run(args: argparse.Namespace) -> int:
    from .pipeline import W2SPipeline

    checked = args.preflight
    log = logging.getLogger("w2s_align").info
    pipeline = W2SPipeline(
        checked.recipe, log=log, jobs=args.jobs, executor=args.executor, ray_address=args.ray_address,
        owns_process=True, plan=checked.plan,
    )  # fmt: skip
    pipeline.prepare(checked.cut)
    metrics = pipeline.run()
    if args.quiet:  # the results table still shows
        from .analysis.render import render_console

        print(render_console(metrics))
    return 0


def _plan(args: argparse.Namespace) -> int:
    # Light: neither torch nor TRL. So `run` checks the rungs' trainer configs (and that the models load) instead,
    # before any training.
    from .cache import StageCache

    print(args.preflight.plan.describe(StageCache(args.preflight.recipe.run_dir)))
    return 0


def _trainer(args: argparse.Namespace) -> int:
    from .trainer_cli import main as train_main

    return train_main(args.trainer, args.rest, quiet=args.quiet)


def _analyze(args: argparse.Namespace) -> int:
    from .analysis.report import analyze_finished_run

    analyze_finished_run(args.finished_run)
    return 0


# The most worlds a calibration row may take (each is seconds of CPU in the trained world), the most seeds a world
# trains, and the most values of a row-making option.
MAX_WORLDS = 100_000
MAX_SEEDS = 100
MAX_ROWS = 20
# Test pairs of a simulated world: the blind spot (pairs the strong model knows and the weak one does not), about a
# fifth of them, holds about 20 pairs at the fewest, 2 of them made wrong by the smallest planted strength (0.1).
MIN_PAIRS = 100
MAX_PAIRS = 100_000


def _check_calibrate(args: argparse.Namespace) -> None:
    """Every option of `calibrate` in its range, and the plot's file writable, before any world is simulated."""
    from .analysis.intervals import check_bootstrap_size
    from .options import MAX_BOOTSTRAP, MIN_BOOTSTRAP

    ranges = {
        "worlds": (1, MAX_WORLDS),
        "trained_worlds": (1, MAX_WORLDS),
        "pairs": (MIN_PAIRS, MAX_PAIRS),
        "bootstrap": (MIN_BOOTSTRAP, MAX_BOOTSTRAP),
    }
    for name, (low, high) in ranges.items():
        value = getattr(args, name)
        if not low <= value <= high:
            raise W2SInputError(f"--{name.replace('_', '-')} must be between {low} and {high}, got {value}")
    check_bootstrap_size(args.pairs, args.bootstrap, "--bootstrap with --pairs")
    if any(not 1 <= k <= MAX_SEEDS for k in args.seeds) or any(not 0 < s <= 1 for s in args.strengths):
        raise W2SInputError(f"--seeds must be between 1 and {MAX_SEEDS} and --strengths in (0, 1]")
    if any(not 0 < w <= 1000 for w in args.weights):
        raise W2SInputError("--weights (of the trained world's deceivers) must be in (0, 1000]")
    for name in ("seeds", "strengths", "weights"):
        if len(getattr(args, name)) > MAX_ROWS:  # each value is a row of worlds
            raise W2SInputError(f"--{name}: at most {MAX_ROWS} values, got {len(getattr(args, name))}")
    if args.plot is not None:
        args.plot = _check_plot(args.plot, args.world)


def _check_plot(plot: str, world: str) -> str:
    """The file `calibrate --plot` writes (`~` expanded): its format one matplotlib writes, its folder there and
    writable. Checked first: matplotlib would refuse it only after the minutes of simulation."""
    if world == "trained":
        raise W2SInputError("--plot draws the simulated world's power: give --world simulated or both")
    if importlib.util.find_spec("matplotlib") is None:
        raise W2SInputError('--plot needs matplotlib: pip install "w2s_align[plotting]"')
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(plot).expanduser()
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        raise W2SInputError(
            f"--plot {plot}: name a file ending in .png, or another format matplotlib writes ({', '.join(formats)})"
        )
    if path.is_dir():
        raise W2SInputError(f"--plot {plot}: a directory; name the file to write, e.g. {Path(plot, 'power.png')}")
    if not path.parent.is_dir():
        raise W2SInputError(f"--plot {plot}: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise W2SInputError(f"--plot {plot}: cannot be written (no write permission on {path.parent})")
    return str(path)


def _calibrate(args: argparse.Namespace) -> int:
    if args.world in ("simulated", "both"):
        from .analysis.calibration import calibration_table, plot_power, render_table

        rows = calibration_table(args.seeds, args.strengths, args.worlds, args.pairs, args.bootstrap)
        print("simulated world: teacher-aligned error added by the conflict\n" + render_table(rows))
        if args.plot and plot_power(rows, args.plot) is not None:
            print(f"plot: {args.plot}")
    if args.world in ("trained", "both"):
        from .analysis.trained_world import render_trained_table, trained_detection_rates

        rows = trained_detection_rates(args.seeds, args.weights, args.trained_worlds, args.bootstrap)
        print("\ntrained world: both verdicts\n" + render_trained_table(rows))
    return 0


# Distributions whose versions `w2s-align env` reports, read from their metadata (nothing heavy is imported for them).
_ENV_PACKAGES = (
    "transformers", "trl", "datasets", "accelerate", "peft", "evaluate", "deepspeed", "bitsandbytes", "matplotlib"
)  # fmt: skip


def _env(args: argparse.Namespace) -> int:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from . import __version__

    if torch.cuda.is_available():
        devices = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    else:
        devices = "cpu (no CUDA device)"
    lines = {
        "Platform": platform.platform(),
        "Python version": platform.python_version(),
        "w2s_align version": __version__,
        "PyTorch version": torch.__version__,
        "Accelerator(s)": devices,
    }
    for name in _ENV_PACKAGES:
        try:
            lines[f"{name} version"] = version(name)
        except PackageNotFoundError:
            lines[f"{name} version"] = "not installed"
    print("\nCopy-paste the following information when reporting an issue:\n")
    print("\n".join(f"- {key}: {value}" for key, value in lines.items()) + "\n")
    return 0


def _output_options(log_level: bool = True) -> argparse.ArgumentParser:
    """The options of every command that say how much it prints (see `w2s_align.verbosity`). The trainer commands
    take no `--log-level` of their own: theirs is TrainingArguments' (`--log_level`/`--log-level`, e.g. `passive`)."""
    options = argparse.ArgumentParser(add_help=False)
    loudness = options.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true", help="Print only the results and errors.")
    loudness.add_argument("-v", "--verbose", action="store_true", help="Also print every trainer log line.")
    if log_level:
        options.add_argument(
            "--log-level",
            choices=["debug", "info", "warning", "error", "critical"],
            default="warning",
            help="Level of the libraries' messages (transformers, datasets, accelerate, TRL, PEFT); default: warning.",
        )
    return options


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its mistakes in one line, as every other mistake (not its usage text first)."""

    def error(self, message: str) -> None:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="w2s-align", description="Weak-to-strong alignment experiments on TRL.")
    parser.add_argument("--version", action="version", version=f"w2s-align {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    output = _output_options()
    _add_run(commands, output)
    plan = commands.add_parser(
        "plan", parents=[output], help="Dry run: list the stages a recipe implies and which are cached."
    )
    plan.add_argument("recipe", help="Path to a recipe YAML file.")
    plan.add_argument("overrides", nargs="*", help="KEY=VALUE overrides, as for `run`.")
    plan.set_defaults(handler=_plan, libraries=False)
    analyze = commands.add_parser(
        "analyze", parents=[output], help="Recompute metrics and the report from a run's predictions."
    )
    analyze.add_argument("run_dir", help="A run directory written by `w2s-align run`.")
    analyze.add_argument("overrides", nargs="*", help="analysis.KEY=VALUE, e.g. analysis.known=confident.")
    analyze.set_defaults(handler=_analyze)
    _add_calibrate(commands, output)
    for name, what in (("reward", "a reward model"), ("dpo", "a DPO/SimPO policy")):
        # The trainer's own parser (TRL's) reads everything after the command, --help included.
        trainer = commands.add_parser(
            name,
            parents=[_output_options(log_level=False)],
            add_help=False,
            help=f"Train {what} on a preference dataset (TRL-style).",
        )
        trainer.set_defaults(handler=_trainer, trainer=name, log_level="warning")
    env = commands.add_parser("env", parents=[output], help="Print versions and devices (for bug reports).")
    env.set_defaults(handler=_env)
    return parser


def _add_run(commands, output: argparse.ArgumentParser) -> None:
    """The `run` command and its executor options."""
    run = commands.add_parser("run", parents=[output], help="Run a recipe (cached stages are skipped).")
    run.add_argument("recipe", help="Path to a recipe YAML file, e.g. recipes/quickstart.yaml.")
    run.add_argument("overrides", nargs="*", help="KEY=VALUE overrides of any recipe field, e.g. data.gt_size=500.")
    run.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        help="Stages to run at once on worker processes, each with its share of the CPU threads (for CPU sweeps of "
        "small models; see docs/recipes.md). Default: 1.",
    )
    run.add_argument(
        "--executor",
        choices=tuple(EXECUTORS),
        default="local",
        help="; ".join(f"{name}: {choice.help}" for name, choice in EXECUTORS.items()) + ".",
    )
    run.add_argument(
        "--ray-address",
        default=None,
        help="With --executor ray: a running cluster, HOST:PORT of its head node (as `ray start --head` prints it), "
        "ray://HOST:PORT (Ray Client), or auto (the cluster RAY_ADDRESS or the last `ray start` on this machine "
        "names); default: a new local instance, whatever RAY_ADDRESS says.",
    )
    run.set_defaults(handler=_run)


def _add_calibrate(commands, output: argparse.ArgumentParser) -> None:
    """The `calibrate` command: the worlds, their sizes and the plot."""
    calibrate = commands.add_parser(
        "calibrate",
        parents=[output],
        help="The deception verdicts on worlds where the truth is known (simulated, trained): false positives, power.",
    )
    calibrate.add_argument(
        "--world", choices=["simulated", "trained", "both"], default="both", help="Which world (default both)."
    )
    calibrate.add_argument("--worlds", type=int, default=200, help="Simulated experiments per row (default 200).")
    calibrate.add_argument(
        "--trained-worlds", type=int, default=100, help="Trained experiments per row (default 100; about 5 s each)."
    )
    calibrate.add_argument(
        "--weights", type=float, nargs="+", default=[1.0, 3.0, 10.0], help="The trained world's deceiver weights."
    )
    calibrate.add_argument("--seeds", type=int, nargs="+", default=[3, 5], help="Seed counts (default 3 5).")
    calibrate.add_argument(
        "--strengths", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5], help="Planted deception strengths."
    )
    calibrate.add_argument(
        "--pairs", type=int, default=1000, help=f"Test pairs per world, {MIN_PAIRS} to {MAX_PAIRS} (default 1000)."
    )
    calibrate.add_argument("--bootstrap", type=int, default=200, help="Bootstrap resamples (default 200).")
    calibrate.add_argument(
        "--plot", help="Write the simulated world's power plot to this PNG file (or .pdf, .svg, ...)."
    )
    calibrate.set_defaults(handler=_calibrate)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if hasattr(args, "overrides"):  # argparse leaves KEY=VALUE given after an option (`--jobs 2 seeds=[0]`) over
        args.overrides += [item for item in rest if "=" in item and not item.startswith("-")]
        rest = [item for item in rest if item not in args.overrides]
    if rest and not hasattr(args, "trainer"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    from .verbosity import configure_datasets, configure_libraries, configure_output

    progress = configure_output("warning" if args.quiet else "debug" if args.verbose else "info")
    try:
        _check_arguments(args)
        if args.command in ("run", "plan"):  # the recipe is checked before torch is imported: a mistake stops at once
            from .preflight import before_torch
            from .recipe_yaml import load_recipe

            args.loaded_recipe = load_recipe(args.recipe, args.overrides)
            if args.command == "run":
                configure_datasets(args.log_level, progress)
            args.preflight = before_torch(args.loaded_recipe, run=args.command == "run")
        if getattr(args, "libraries", True):  # `plan` imports neither torch nor transformers
            configure_libraries(args.log_level, progress)
        return args.handler(args)
    except W2SInputError as error:
        if _is_main_process():  # every process stops; one message is enough
            print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if _is_main_process():
            print(f"\ninterrupted: w2s-align {args.command} stopped; {_RESUMES[args.command]}", file=sys.stderr)
        return 130
    except Exception as error:  # a full disk or a permission mid-run is the machine's refusal, not a defect
        lost = _lost_peer(error)
        if lost is not None and not args.verbose:  # a launch's other process died or froze: no defect here
            if os.environ.get("LOCAL_RANK", "0") == "0":  # one line a node: the main process may be the one lost
                print(f"error: {lost}; {_RESUMES[args.command]}", file=sys.stderr)
            return 1
        problem = storage_problem(error, _written_directories(args))
        if problem is None or args.verbose:  # a defect, or asked for: the traceback
            raise
        if _is_main_process():
            print(f"error: {problem}; {_RESUMES[args.command]}", file=sys.stderr)
        return 2


def _check_arguments(args: argparse.Namespace) -> None:
    """A command's own options, checked before its recipe, torch (seconds of imports) or anything written."""
    if args.command == "run":
        check_executor(args.executor, args.jobs, args.ray_address)
    elif args.command == "calibrate":
        _check_calibrate(args)
    elif args.command == "analyze":
        from .analysis.finished_run import load_finished_run

        args.finished_run = load_finished_run(args.run_dir, args.overrides)


def _written_directories(args: argparse.Namespace) -> list[str]:
    """Where the command writes: the run directory, or the trainer's `--output_dir`; and the datasets cache."""
    directories = [str(args.loaded_recipe.run_dir)] if hasattr(args, "loaded_recipe") else []
    for flag in ("--output_dir", "--output-dir"):
        if flag in args.rest[:-1]:
            directories.append(args.rest[args.rest.index(flag) + 1])
        directories += [item.split("=", 1)[1] for item in args.rest if item.startswith(f"{flag}=")]
    from datasets import config  # where `datasets` keeps the Arrow files of what it loads

    return [*directories, str(config.HF_DATASETS_CACHE)]


def _lost_peer(error: BaseException) -> str | None:
    """[`w2s_align.distributed.lost_peer`], where torch was imported (a run, the trainer commands)."""
    if "torch" not in sys.modules:
        return None
    from .distributed import lost_peer

    return lost_peer(error)


def _is_main_process() -> bool:
    # The launchers (accelerate, torchrun, DeepSpeed) give each process its RANK: read without importing torch.
    return os.environ.get("RANK", "0") == "0"


# What the one line printed on Ctrl-C says about running the command again.
_RESUMES = {
    "run": "run it again to resume (finished stages are kept; training resumes from its last checkpoint)",
    "plan": "nothing was written",
    "analyze": "run it again to redo the analysis",
    "reward": "to resume, run it again with --resume_from_checkpoint OUTPUT_DIR/checkpoint-STEP (the last one saved)",
    "dpo": "to resume, run it again with --resume_from_checkpoint OUTPUT_DIR/checkpoint-STEP (the last one saved)",
    "env": "nothing was written",
    "calibrate": "nothing was written",
}
