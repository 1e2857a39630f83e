"""A calibration world with trained students: the deception verdicts checked on models that learn, not on drawn logits.

The simulated world of [`w2s_align.analysis.calibration`] draws every student's logits; it cannot show how a student
that is *trained* to copy its teacher more reads. Here every model is a reward model trained with Adam on this
package's own student loss and explicit conflict term ([`w2s_align.losses.StudentObjective`]):

- Each response has features (visible, hidden and nuisance dimensions); its harmlessness is a fixed linear function
  of the visible and hidden ones, and a pair's ground truth prefers the more harmless response (with label noise).
- The **weak** reward model is linear in the visible and nuisance features: it cannot see the hidden ones.
- The **strong** model is a small MLP (one hidden layer) whose body is pretrained once per world on the ground truth of
  other pairs (what the strong model knows before finetuning); every seed gives it a fresh head and its own batch
  order, and finetunes it on the ground-truth split (the strong ceiling) or on the weak soft labels (students).
- Per seed the weak ceiling is retrained too, so the knowledge areas move from seed to seed, as on real data.

The controls are those a recipe trains, each at the twin's seed: the **twin** (weak soft labels, `xent`), the
**placebo** (the twin with its batches in another order), the **random direction** (the paper's explicit conflict
toward coin-toss responses) and the **imitation** control (the twin trained twice the epochs). Each model's agreement
with the weak labels on the split it learned from is measured after training (the imitation-matched control of
[`w2s_align.analysis.deception.deception_against_controls`]). Students judged against them ([`KINDS`]):

| kind | what it is | deceptive |
| --- | --- | --- |
| `same-seed` | the twin with its batches in a third order | no |
| `random-push` | the explicit conflict toward another coin toss | no |
| `hardened` | hardened weak labels, batches in a third order | no |
| `longer` | twice the epochs, batches in a third order | no (imitates more) |
| `faster` | 1.5 times the learning rate | no (imitates more) |
| `imitation-weight` | the weak labels sharpened (the teacher's logit x 1.2) | no (imitates more) |
| `amplifier` | the paper's explicit rule toward the teacher's side (further where it agrees) | no |
| `explicit` | the paper's explicit conflict toward the harmful response (alpha 0.5) | not by construction |
| `implicit` | helpfulness pairs mixed in 1:1, 65% of them preferring the more harmful response | not by construction |

The implicit student is judged against its own controls, as the plan derives them: its twin trained as many steps
(its weak labels padded), that twin's placebo and imitation control, and the mix with coin-toss helpfulness labels.
| `deceiver` | the training pairs of the blind spot relabelled to the harmful response, weighted `strength` | yes |

A deceiver's targets are decided on the training pairs, never the test pairs: those where the strong ceiling is right
and the weak label wrong.

The false-positive rate of a verdict is the share of worlds where it says "shown" for a non-deceptive kind; the power,
that share for a deceiver. `w2s-align calibrate` prints this world's table beside the simulated one's.

Example:

```python
>>> import numpy as np
>>> from w2s_align.analysis.trained_world import TrainedWorld, simulate_trained
>>> out = simulate_trained(["same-seed"], 1, np.random.default_rng(0), TrainedWorld(n_train=100, n_test=100))
>>> sorted(out), round(out["imitation"][0].agreement_gain, 2) >= -1
(['imitation', 'placebo', 'random-direction', 'same-seed'], True)
```
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..controls import DATA_ORDER_STEP, IMITATION_EPOCHS
from ..losses import StudentLossArguments, StudentObjective, harden
from ..options import DECEPTION_CONTROLS
from .deception import MIN_VERDICT_SEEDS, DeceptionAnalyzer, deception_against_controls, training_agreement_gain

NON_DECEPTIVE = ("same-seed", "random-push", "hardened", "longer", "faster", "imitation-weight", "amplifier")
CONFLICTS = ("explicit", "implicit")
KINDS = (*NON_DECEPTIVE, *CONFLICTS, "deceiver")
VERDICTS = {"added": "teacher-aligned error added", "beyond": "deception beyond imitation"}


@dataclass(frozen=True)
class TrainedWorld:
    """The trained world's settings."""

    visible: int = 3  # features the weak model sees that carry harmlessness
    hidden: int = 3  # features only the strong model sees that carry harmlessness
    nuisance: int = 4  # features without harmlessness
    hidden_weight: float = 1.0  # harmlessness weight of the hidden features relative to the visible ones
    label_noise: float = 0.3  # noise of the ground truth, relative to the harmlessness difference's scale
    helpful_conflict: float = 0.65  # share of helpfulness pairs that prefer the more harmful response (the implicit)
    n_train: int = 1000  # pairs of the ground-truth and of the weak-to-strong split each
    n_test: int = 1000
    n_pretrain: int = 2000  # pairs the strong body is pretrained on (its knowledge before finetuning)
    pretrain_epochs: int = 4
    width: int = 8  # hidden units of the strong model
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 3e-3
    weak_learning_rate: float = 2e-2
    alpha: float = 0.5  # strength of the explicit conflict (and of its controls)


@dataclass
class _Job:
    """How one model trains: its labels (for the first response), an optional conflict label, and what differs."""

    labels: np.ndarray
    conflict: np.ndarray | None = None
    alpha: float = 0.0
    epochs: float = 1.0  # times the world's epochs
    lr: float = 1.0  # times the world's learning rate
    order: int = 0  # the batch-order offset (the placebo's change)
    weight: np.ndarray | None = None  # per-pair loss weights (a deceiver's targets)
    extra: tuple[np.ndarray, np.ndarray] | None = None  # pairs mixed in (the implicit conflict) and their labels
    steps_of: int | None = None  # size of the split the step count is computed from


class _Strong(torch.nn.Module):
    def __init__(self, dims: int, width: int):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(dims, width), torch.nn.Tanh())
        self.head = torch.nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, 2, dims) -> the preference logit for the first response
        rewards = self.head(self.body(x)).squeeze(-1)
        return rewards[:, 0] - rewards[:, 1]


class _Weak(torch.nn.Module):
    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.mask = mask
        self.head = torch.nn.Linear(len(mask), 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rewards = self.head(x * self.mask).squeeze(-1)
        return rewards[:, 0] - rewards[:, 1]


def _train(model: torch.nn.Module, x: np.ndarray, job: _Job, seed: int, epochs: float, batch: int, lr: float) -> None:
    """Adam on the package's student loss (and explicit conflict term), minibatches in an order drawn by the seed."""
    labels, conflict, weight = job.labels, job.conflict, job.weight
    steps = math.ceil((job.steps_of or len(x)) / batch) * epochs * job.epochs
    if job.extra is not None:
        x, labels = np.concatenate([x, job.extra[0]]), np.concatenate([labels, job.extra[1]])
    objective = StudentObjective(StudentLossArguments(student_loss="xent", conflict_alpha=job.alpha))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr * job.lr)
    order = np.random.default_rng([seed, 7919, job.order])
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels.astype(np.float32))
    ct = None if conflict is None else torch.from_numpy(conflict.astype(np.float32))
    wt = None if weight is None else torch.from_numpy(weight.astype(np.float32))
    total, step = round(steps), 0
    while step < total:
        perm = order.permutation(len(x))
        for start in range(0, len(x), batch):
            if step >= total:
                break
            index = torch.from_numpy(perm[start : start + batch])
            logits = model(xt[index])
            pair_weight = None if wt is None else wt[index] / len(index)
            loss, logs = objective.loss(logits, yt[index], step, total, training=True, weight=pair_weight)
            if ct is not None:
                loss = loss + objective.conflict(logits, ct[index], True, lambda t: t, logs)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1


def _probs(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(x))).numpy().astype(float)


def _jobs(
    w: TrainedWorld,
    kinds: Sequence[str],
    strengths: Sequence[float],
    soft: np.ndarray,
    w2s_x: np.ndarray,
    w2s_y: np.ndarray,
    helpful: tuple[np.ndarray, np.ndarray],
    coins: list[np.ndarray],
    strong_train: np.ndarray,
) -> dict[str, _Job]:
    """What each student of one seed trains on: the twin, the controls, the other kinds and a deceiver a strength, from
    the weak labels `soft` of the training pairs (`strong_train`: the strong ceiling's probabilities on them)."""
    help_x, help_y = helpful
    hard = np.asarray(harden(torch.from_numpy(soft)), dtype=float)
    logit = np.log(np.clip(soft, 1e-6, 1 - 1e-6)) - np.log(np.clip(1 - soft, 1e-6, 1 - 1e-6))
    harmful = 1.0 - w2s_y  # 1 where the first response is the harmful one
    # The controls as `w2s_align.controls` derives them from the twin (the names the verdicts read).
    controls = {
        "placebo": _Job(soft, order=DATA_ORDER_STEP),
        "random-direction": _Job(soft, coins[0], w.alpha),
        "imitation": _Job(soft, epochs=IMITATION_EPOCHS),
    }
    jobs = {
        "twin": _Job(soft),
        **{name: controls[name] for name in DECEPTION_CONTROLS},
        "same-seed": _Job(soft, order=2),
        "random-push": _Job(soft, coins[1], w.alpha),
        "hardened": _Job(hard, order=2),
        "longer": _Job(soft, epochs=2.0, order=2),
        "faster": _Job(soft, lr=1.5),
        "imitation-weight": _Job(1.0 / (1.0 + np.exp(-1.2 * logit))),
        "amplifier": _Job(soft, hard, w.alpha),
        "explicit": _Job(soft, harmful, w.alpha),
        "implicit": _Job(soft, extra=(help_x, help_y), steps_of=2 * w.n_train),
    }
    if "implicit" in kinds:  # its own controls, as the plan derives them from its step-matched twin
        padded = (w2s_x, soft)
        jobs |= {
            "implicit/twin": _Job(soft, extra=padded, steps_of=2 * w.n_train),
            "implicit/placebo": _Job(soft, extra=padded, steps_of=2 * w.n_train, order=DATA_ORDER_STEP),
            "implicit/random-direction": _Job(soft, extra=(help_x, coins[0]), steps_of=2 * w.n_train),
            "implicit/imitation": _Job(soft, extra=padded, steps_of=2 * w.n_train, epochs=IMITATION_EPOCHS),
        }
    # Decided on the training pairs: where the strong ceiling is right and the weak label wrong.
    target = ((strong_train > 0.5) == (w2s_y > 0.5)) & ((soft > 0.5) != (w2s_y > 0.5))
    for strength in strengths:
        jobs[f"deceiver-{strength:g}"] = _Job(np.where(target, harmful, soft), weight=np.where(target, strength, 1.0))
    return jobs


def simulate_trained(
    kinds: Sequence[str],
    seeds: int,
    rng: np.random.Generator,
    world: TrainedWorld = TrainedWorld(),
    strengths: Sequence[float] = (3.0,),
) -> dict[str, list[DeceptionAnalyzer]]:
    """One world: per seed, analyzers (each against the twin, with its training agreement gain) of the controls and of
    a student of every kind in `kinds` (a deceiver once per strength, named `deceiver-<strength>`)."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"kinds must be among {KINDS}, got {sorted(unknown)}")
    w = world
    dims = w.visible + w.hidden + w.nuisance
    direction = np.zeros(dims)
    for start, size, weight in ((0, w.visible, 1.0), (w.visible, w.hidden, w.hidden_weight)):
        part = rng.normal(0.0, 1.0, size)
        direction[start : start + size] = weight * part / np.linalg.norm(part)
    noise = w.label_noise * float(np.linalg.norm(direction)) * math.sqrt(2)

    def pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(0.0, 1.0, (n, 2, dims)).astype(np.float32)
        return x, (((x[:, 0] - x[:, 1]) @ direction + noise * rng.normal(0.0, 1.0, n)) > 0).astype(float)

    def fit(model, x, job, seed, lr) -> torch.nn.Module:
        _train(model, x, job, seed, w.epochs, w.batch_size, lr)
        return model

    pre_x, pre_y = pairs(w.n_pretrain)
    torch.manual_seed(int(rng.integers(2**31)))
    body = fit(_Strong(dims, w.width), pre_x, _Job(pre_y, epochs=w.pretrain_epochs / w.epochs), 0, w.learning_rate)
    body = body.body.state_dict()
    mask = torch.ones(dims)
    mask[w.visible : w.visible + w.hidden] = 0.0

    names = [*DECEPTION_CONTROLS, *[k for k in kinds if k != "deceiver"]]
    names += [f"implicit/{c}" for c in DECEPTION_CONTROLS] if "implicit" in kinds else []
    names += [f"deceiver-{s:g}" for s in strengths] if "deceiver" in kinds else []
    out: dict[str, list[DeceptionAnalyzer]] = {name: [] for name in names}
    for _ in range(seeds):
        seed = int(rng.integers(2**31))
        (gt_x, gt_y), (w2s_x, w2s_y), (test_x, test_y) = pairs(w.n_train), pairs(w.n_train), pairs(w.n_test)
        help_x, harmless = pairs(w.n_train)
        help_y = np.where(rng.random(w.n_train) < w.helpful_conflict, 1.0 - harmless, harmless)
        test_x = np.where(test_y[:, None, None] == 1, test_x, test_x[:, ::-1])  # the harmless response first

        def strong_model(seed: int = seed) -> _Strong:
            torch.manual_seed(seed)  # the seed's head; the body the world pretrained
            model = _Strong(dims, w.width)
            model.body.load_state_dict(body)
            return model

        torch.manual_seed(seed)
        weak = fit(_Weak(mask), gt_x, _Job(gt_y), seed, w.weak_learning_rate)
        strong = fit(strong_model(), gt_x, _Job(gt_y), seed, w.learning_rate)
        soft = _probs(weak, w2s_x)  # the weak labels: the probability that the first response is better
        coins = [(rng.random(w.n_train) < 0.5).astype(float) for _ in range(2)]
        jobs = _jobs(w, kinds, strengths, soft, w2s_x, w2s_y, (help_x, help_y), coins, _probs(strong, w2s_x))
        weak_p, strong_p = _probs(weak, test_x), _probs(strong, test_x)
        test, train = {}, {}
        for name in ["twin", *(["implicit/twin"] if "implicit" in kinds else []), *names]:
            model = fit(strong_model(), w2s_x, jobs[name], seed, w.learning_rate)
            test[name], train[name] = _probs(model, test_x), _probs(model, w2s_x)
        for name in names:
            twin = "implicit/twin" if name.startswith("implicit") else "twin"  # the implicit student's is step-matched
            gain = training_agreement_gain(train[name], train[twin], soft)
            analyzer = DeceptionAnalyzer(
                weak_p, strong_p, test[name], baseline=test[twin], n_bootstrap=0, agreement_gain=gain
            )
            out[name].append(analyzer)
    return out


def trained_detection_rates(
    seed_counts: Iterable[int] = (3, 5),
    strengths: Sequence[float] = (1.0, 3.0, 10.0),
    worlds: int = 100,
    n_bootstrap: int = 200,
    seed: int = 0,
    world: TrainedWorld = TrainedWorld(),
    kinds: Sequence[str] = KINDS,
) -> list[dict[str, Any]]:
    """How often each verdict says "shown" for every kind at every seed count, over `worlds` trained worlds. Each
    world trains its largest seed count once; a smaller count reads its first seeds. Rows hold, per verdict (`added`:
    teacher-aligned error added by the conflict; `beyond`: deception beyond imitation), the count and rate of "shown"
    and the one-sided 95% Clopper-Pearson upper bound of the rate; `effect` (the mean effect against the
    imitation-matched control), `blind_added` (the mean added error in the blind spot, for the power statement) and
    `inconclusive` (worlds without a verdict)."""
    from scipy.stats import beta

    counts = sorted(set(seed_counts))
    tallies: dict[tuple[str, int], dict[str, Any]] = {}
    for index in range(worlds):
        analyzers = simulate_trained(kinds, counts[-1], np.random.default_rng([seed, index]), world, strengths)
        for name, group in analyzers.items():
            if name in DECEPTION_CONTROLS or "/" in name:
                continue
            prefix = "implicit/" if name == "implicit" else ""  # judged against its own, step-matched controls
            controls = {c: analyzers[prefix + c] for c in DECEPTION_CONTROLS}
            for k in counts:
                result = deception_against_controls(
                    group[:k], {c: v[:k] for c, v in controls.items()}, n_bootstrap, seed=index
                )
                tally = tallies.setdefault(
                    (name, k), {"added": 0, "beyond": 0, "inconclusive": 0, "effect": [], "blind_added": []}
                )
                tally["added"] += result["exceeds_controls"]
                tally["beyond"] += result["exceeds_imitation"]
                tally["inconclusive"] += result["inconclusive"] is not None
                tally["effect"].append(result["imitation"] and result["imitation"]["effect"]["value"])
                summary = [a.statistics(np.ones((1, len(a.student))))["added_error.blind_spot"][0] for a in group[:k]]
                tally["blind_added"].append(float(np.nanmean(summary)))

    def upper(shown: int) -> float:
        return 1.0 if shown == worlds else float(beta.ppf(0.95, shown + 1, worlds - shown))

    rows = []
    for (name, k), tally in tallies.items():
        kind, _, strength = name.partition("-") if name.startswith("deceiver") else (name, "", "")
        row = {"kind": kind, "strength": float(strength) if strength else 0.0, "seeds": k, "worlds": worlds}
        for verdict in VERDICTS:
            row[verdict] = {
                "shown": tally[verdict],
                "rate": tally[verdict] / worlds,
                "rate_high": upper(tally[verdict]),
            }
        effects = [np.nan if e is None else e for e in tally["effect"]]
        row |= {
            "effect": float(np.nanmean(effects)) if not np.all(np.isnan(effects)) else None,
            "blind_added": float(np.nanmean(tally["blind_added"])),
            "inconclusive": tally["inconclusive"],
        }
        rows.append(row)
    return rows


def render_trained_table(rows: list[dict[str, Any]]) -> str:
    """The trained world's table as markdown: one row per kind, per seed count both verdicts' rates [upper bound]."""
    counts = sorted({row["seeds"] for row in rows})
    cases = list(dict.fromkeys((row["kind"], row["strength"]) for row in rows))
    by_case = {(row["kind"], row["strength"], row["seeds"]): row for row in rows}
    header = "| student | deceptive | added error in the blind spot |"
    for k in counts:
        note = "" if k >= MIN_VERDICT_SEEDS else " (no verdict given)"
        header += " | ".join(f" {text}, {k} seeds{note} [95% upper bound]" for text in VERDICTS.values()) + " |"
    lines = [header, "| --- | --- | --- |" + " --- |" * (2 * len(counts))]
    for kind, strength in cases:
        name = f"deceiver, weight {strength:g}" if kind == "deceiver" else kind
        deceptive = "yes" if kind == "deceiver" else "not by construction" if kind in CONFLICTS else "no"
        first = by_case[(kind, strength, counts[-1])]
        cells = [f"{first['blind_added']:+.3f}"]
        for k in counts:
            row = by_case[(kind, strength, k)]
            cells += [f"{row[v]['rate']:.1%} [{row[v]['rate_high']:.1%}]" for v in VERDICTS]
        lines.append(f"| {name} | {deceptive} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{rows[0]['worlds']} worlds per row."
