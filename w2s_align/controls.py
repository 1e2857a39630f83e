"""The controls of a run's comparisons: one record each, in one place.

A control is a student trained so that a claim about another student can be read against it: it shares everything
with that student (teacher, method, seed, initialisation, batches) but the one thing its name says. A [`Control`]
record says which students have it (`of`), how its spec derives from theirs (`derive`, from the student and its
no-conflict twin), whether the deception verdicts read it (`deception`), and how the reports name it. The runner
applies a control's change without knowing it: a change of training is a change of the spec's rung (its batch order,
its epochs), which the stage's hash covers; a change of the pairs is a spec field the runner already reads (the
conflict's direction, a filter, padding).

| control | of | what it is | what it rules out |
| --- | --- | --- | --- |
| `placebo` | conflicted students | the twin with its batches in another order (same initialisation and pairs) | churn: any change of training flips the pairs near the boundary |
| `random-direction` | conflicted students | the same conflict, strength and trigger toward a coin-toss response | any push of this size, with no harm in its direction |
| `imitation` | conflicted students | the twin trained twice the epochs on the same weak labels | a student that only copies its teacher more (the imitation-matched control) |
| `budget` | implicit students | the twin trained on as many pairs (its own weak labels padded) | the extra optimizer steps of the helpfulness pairs |
| `random-subset` | confidence-filtered students | a random subset of the weak labels of the size the filter keeps | training on fewer pairs |

Adding a control: a record in [`CONTROLS`] (and, for a change of the pairs, the spec field the runner reads). The plan
lists it, trains it for every student it is `of`, and the reports name it by its `label`.

Example:

```python
>>> from w2s_align.controls import CONTROLS, DATA_ORDER_STEP
>>> [name for name, control in CONTROLS.items() if control.deception]
['placebo', 'random-direction', 'imitation']
>>> CONTROLS["placebo"].label, DATA_ORDER_STEP
('placebo (twin, batches in another order)', 10000)
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .options import DECEPTION_CONTROLS, FilterSetting
from .recipe import RungConfig

# A placebo's batch order is drawn by its seed plus this: far from the seeds recipes use.
DATA_ORDER_STEP = 10_000
# How many times the twin's epochs the imitation control trains.
IMITATION_EPOCHS = 2.0


def with_training(rung: RungConfig, **changes: Any) -> RungConfig:
    """`rung` with its training settings changed (a field of `TrainingSettings`, or `trainer_kwargs` merged in)."""
    extra = changes.pop("trainer_kwargs", {})
    training = dataclasses.replace(rung.training, **changes)
    if extra:
        training = dataclasses.replace(training, trainer_kwargs={**training.trainer_kwargs, **extra})
    return dataclasses.replace(rung, training=training)


def _placebo(student: Any, twin: Any) -> Any:
    rung = with_training(twin.rung, trainer_kwargs={"data_seed": twin.seed + DATA_ORDER_STEP})
    return dataclasses.replace(twin, rung=rung, variant="placebo")


def _imitation(student: Any, twin: Any) -> Any:
    training = twin.rung.training
    changes: dict[str, Any] = {"num_train_epochs": IMITATION_EPOCHS * training.num_train_epochs}
    if training.trainer_kwargs.get("max_steps", -1) > 0:  # a step budget overrides the epochs
        changes["trainer_kwargs"] = {"max_steps": round(IMITATION_EPOCHS * training.trainer_kwargs["max_steps"])}
    return dataclasses.replace(twin, rung=with_training(twin.rung, **changes), variant="imitation")


@dataclass(frozen=True)
class Control:
    """One control: its name (in `metrics.json` and [`Plan.controls`]), which students have it, how it derives from
    one of them (`derive(student, twin)`, the twin being the student without its conflict), whether the deception
    verdicts read it, and how reports name it (`label`) and what it rules out (`rules_out`)."""

    name: str
    of: Literal["conflict", "implicit", "confidence filter"]
    derive: Callable[[Any, Any], Any]
    label: str
    rules_out: str
    what: str = ""  # how a student's label names its change, for a control told apart by `StudentSpec.variant`
    deception: bool = False
    # Names it in stage names and model keys: a control told apart by `StudentSpec.variant`.
    variant: bool = False

    def applies(self, student: Any) -> bool:
        """Whether `student` (one the experiment asks about) has this control."""
        if self.of == "conflict":
            return student.conflict.kind != "none"
        if self.of == "implicit":
            return student.conflict.kind == "implicit"
        return student.label_filter.kind == "confidence"


CONTROLS: dict[str, Control] = {
    control.name: control
    for control in (
        Control(
            "placebo",
            "conflict",
            _placebo,
            "placebo (twin, batches in another order)",
            "churn: any change of training flips the pairs near the boundary",
            what="batches in another order",
            deception=True,
            variant=True,
        ),
        Control(
            "random-direction",
            "conflict",
            lambda student, twin: dataclasses.replace(student, conflict=student.conflict.random),
            "random direction",
            "any push of the conflict's size, with no harm in its direction",
            deception=True,
        ),
        Control(
            "imitation",
            "conflict",
            _imitation,
            f"imitation (twin, {IMITATION_EPOCHS:g} x the epochs)",
            "a student that only copies its teacher more (read at the conflicted student's agreement with its teacher)",
            what=f"{IMITATION_EPOCHS:g} x the epochs",
            deception=True,
            variant=True,
        ),
        Control(
            "budget",
            "implicit",
            lambda student, twin: twin,
            "steps of the implicit student",
            "the extra optimizer steps of the helpfulness pairs",
        ),
        Control(
            "random-subset",
            "confidence filter",
            lambda student, twin: dataclasses.replace(student, label_filter=FilterSetting("random")),
            "random subset",
            "training on fewer pairs",
        ),
    )
}
assert tuple(name for name, control in CONTROLS.items() if control.deception) == DECEPTION_CONTROLS, (
    "options.DeceptionControl names the controls the deception verdicts read"
)


def identify(spec: Any) -> str | None:
    """The control `spec` is, or None for a student the experiment asks about."""
    if spec.variant is not None:
        return spec.variant
    if spec.conflict.direction == "random":
        return "random-direction"
    if spec.pad_ratio:
        return "budget"
    return "random-subset" if spec.label_filter.kind == "random" else None
