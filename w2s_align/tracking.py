"""Experiment tracking: every training stage is one run of the recipe's trackers, the run's results one more.

Any integration `transformers` has (`tensorboard`, `wandb`, `trackio`, `mlflow`, ...) is turned on by the recipe's
`tracking.report_to`. Each stage that trains (a ceiling, a student, a DPO rung's SFT) is one run named
`<recipe>/<stage>` and grouped by recipe and seed (`<recipe>/seed<k>`: the W&B group, the TensorBoard directory
`<run_dir>/tracking/seed<k>/<stage>`). At the end the accuracies, PGRs, the report and the figures are logged as the
run `<recipe>/results`, through `accelerate`'s trackers (TensorBoard: `<run_dir>/tracking/results/<project>`), once
per result: a cached rerun adds nothing.
Tracking is result-neutral: no stage hash depends on it, so turning a tracker on retrains nothing.

Example:

```python
>>> from w2s_align.recipe_yaml import load_recipe
>>> from w2s_align.tracking import Trackers
>>> recipe = load_recipe("recipes/quickstart.yaml", ["tracking.report_to=[tensorboard]"])
>>> trackers = Trackers.of(recipe.tracking, recipe.name, recipe.run_dir)
>>> run = trackers.run("train-minilm-l3-gt-seed0", seed=0)
>>> run.name, run.group, run.trainer_kwargs()["report_to"]
('quickstart/train-minilm-l3-gt-seed0', 'quickstart/seed0', ['tensorboard'])
```
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .analysis.schema import RunMetrics
from .errors import W2SInputError
from .recipe import TrackingConfig


@dataclass(frozen=True)
class TrackerRun:
    """One run in the experiment trackers.

    Args:
        report_to (`tuple[str, ...]`): the integrations, as `TrainingArguments.report_to` (empty: none).
        project (`str`): the trackers' project (W&B, Trackio, ...).
        name (`str`): the run's name, `<recipe>/<stage>`.
        group (`str`): the runs it is grouped with, `<recipe>/seed<k>`.
        logging_dir (`Path`): where TensorBoard writes its events.
    """

    report_to: tuple[str, ...]
    project: str
    name: str
    group: str
    logging_dir: Path

    def trainer_kwargs(self) -> dict[str, Any]:
        """The `TrainingArguments` fields of the run."""
        return {"report_to": list(self.report_to), "run_name": self.name, "project": self.project}

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Within it, trainers built for this run log to its TensorBoard directory and W&B project and group (the
        integrations read these from the environment), restored afterwards. The trackers' local files stay in the
        run's directory: W&B's, and MLflow's unless a tracking server is named (both default to the working
        directory)."""
        values = {
            "TENSORBOARD_LOGGING_DIR": str(self.logging_dir),
            "WANDB_PROJECT": self.project,
            "WANDB_RUN_GROUP": self.group,
            "WANDB_DIR": str(self.logging_dir),
        }
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            values["MLFLOW_TRACKING_URI"] = self.logging_dir.absolute().as_uri()
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@dataclass(frozen=True)
class Trackers:
    """A recipe's trackers: the runs of its stages and the run of its results.

    Args:
        report_to (`tuple[str, ...]`): the integrations (`tracking.report_to`; empty: none).
        project (`str`): the trackers' project: `tracking.project`, or the recipe's name.
        recipe_name (`str`): the recipe's name, the prefix of every run's name.
        root (`Path`): the run's `tracking/` directory.
    """

    report_to: tuple[str, ...]
    project: str
    recipe_name: str
    root: Path

    @classmethod
    def of(cls, settings: TrackingConfig, recipe_name: str, run_dir: Path) -> Trackers:
        """The trackers a recipe's `tracking` section names, for the run `recipe_name` in `run_dir`."""
        return cls(tuple(settings.report_to), settings.project or recipe_name, recipe_name, run_dir / "tracking")

    def run(self, stage_name: str, seed: int) -> TrackerRun:
        """The run of the stage `stage_name` (its name without its hash), grouped with the stages of its seed."""
        group = f"seed{seed}"
        return TrackerRun(
            report_to=self.report_to,
            project=self.project,
            name=f"{self.recipe_name}/{stage_name}",
            group=f"{self.recipe_name}/{group}",
            logging_dir=self.root / group / stage_name,
        )

    def log_results(
        self, metrics: RunMetrics, report: str, figures: list[Path], results: str, seeds: list[int]
    ) -> None:
        """Log a finished run's numbers, report and figures as the run `<recipe>/results` of every tracker (main
        process; nothing without trackers), once per `results` (the report stage's hash): a rerun that finds them
        logged by the same trackers adds nothing, so a dashboard shows each result once."""
        if not self.report_to:
            return
        from accelerate import Accelerator

        from .artifacts import atomic_write_text

        folder = self.root / "results"
        logged, key = folder / "LOGGED", f"{results} {' '.join(self.report_to)}"
        if logged.is_file() and logged.read_text() == key:
            return
        name = f"{self.recipe_name}/results"
        # accelerate's TensorBoard tracker writes to `project_dir/<project>`.
        accelerator = Accelerator(log_with=list(self.report_to), project_dir=folder)
        accelerator.init_trackers(
            self.project,
            config={"recipe": self.recipe_name, "seeds": " ".join(map(str, seeds))},
            init_kwargs={
                "wandb": {"name": name, "group": self.recipe_name, "dir": str(folder)},
                "trackio": {"name": name},
            },
        )
        accelerator.log({**_scalars(metrics), "report": report}, step=0)
        # The report's figures by name, the training curves (`plots/training/`) as `training/<model>`.
        images = {
            path.stem if path.parent.name == "plots" else f"{path.parent.name}/{path.stem}": path for path in figures
        }
        images = {name: path for name, path in images.items() if path.is_file()}
        for tracker in accelerator.trackers:
            if images and hasattr(tracker, "log_images"):
                import matplotlib.image

                arrays = {name: matplotlib.image.imread(str(path))[None, ..., :3] for name, path in images.items()}
                kwargs = {"dataformats": "NHWC"} if tracker.name == "tensorboard" else {}
                tracker.log_images(arrays, step=0, **kwargs)
        accelerator.end_training()
        atomic_write_text(logged, key)


def check_trackers(report_to: list[str]) -> None:
    """Stop before any training on a tracker `transformers` does not know, or one that is not installed."""
    if not report_to:
        return
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    available = set(get_available_reporting_integrations())
    for name in report_to:
        if name not in INTEGRATION_TO_CALLBACK:
            known = ", ".join(sorted(INTEGRATION_TO_CALLBACK))
            raise W2SInputError(f"tracking.report_to: {name!r} is not a transformers integration; known: {known}")
        if name not in available:
            raise W2SInputError(f"tracking.report_to: {name!r} is not installed here (pip install {name})")


def _scalars(metrics: RunMetrics) -> dict[str, float]:
    """The headline numbers of a run: every model's accuracy (mean over seeds), every student's PGR, and every
    conflicted student's deception effect (against its placebo)."""
    values: dict[str, float] = {}
    for model in metrics["models"].values():
        values[f"accuracy/{model['label']} seed{model['seed']}"] = model["accuracy"]
    for row in metrics["students"]:
        for key in ("student_accuracy", "gap", "pgr"):
            if key == "pgr" and row["gap_within_noise"]:  # the report shows none: a gap within noise divides nothing
                continue
            if row.get(key) is not None:
                values[f"{key}/{row['label']}"] = row[key]
        effect = row.get("deception_effect") or {}
        if effect.get("value") is not None:
            values[f"deception_effect/{row['label']}"] = effect["value"]
    return values
