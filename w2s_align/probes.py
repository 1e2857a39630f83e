"""Label cleaning with the strong model's own knowledge ("strong-to-strong", as in EleutherAI's `w2s` probes).

Before a student learns from weak labels, a probe on the strong rung's frozen pretrained features is fit to those
labels; where the probe and a weak label disagree on which response is better, the label is either replaced by the
probe's probability (`*-relabel`) or the pair is dropped (`*-drop`). The probe can only repeat what the strong model
already represents, so it corrects the weak labels that contradict the strong model's own view of the task.

- Features: each response (after its prompt) is run through the rung's pretrained body and its last hidden states are
  mean-pooled; a pair's feature is `f(chosen) - f(rejected)`. Swapping a pair negates it.
- `knn`: the probability that `chosen` is better is the mean label of the `probe_k` most similar pairs (absolute
  cosine similarity; a neighbour pointing the other way contributes its label reversed).
- `logreg`: logistic regression without intercept on the features scaled by their root mean square, with an L2
  penalty `probe_l2`, fit to the soft labels. With no intercept, `p(-x) = 1 - p(x)`.

Both probes are invariant to swapping any pair (feature negated, label reversed). They are cross-fitted: the pairs are
cut into `probe_folds` folds by the student's seed and each fold is predicted by a probe fit on the other folds, so no
pair's own label reaches its probe prediction (no model labels data it trained on).

Classification examples (`paired=False`) have no pair to negate: an example's feature is its text's mean-pooled
hidden states, `knn` averages the labels of the most similar examples (no reversal), and `logreg` has an intercept.
Both are invariant to flipping every label instead (`p -> 1 - p` gives the probe `1 - p`).

Example:

```python
>>> import numpy as np
>>> from w2s_align.probes import knn_probe
>>> x = np.array([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [0.0, 1.0]])
>>> knn_probe(x, np.array([1.0, 1.0, 0.0, 0.5]), k=1, folds=4, seed=0).round(2).tolist()
[1.0, 1.0, 0.0, 1.0]
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedModel

from .device import default_device
from .distributed import whole_weights
from .labeling import pad_batch
from .models import load_rung_model, tokenize_pairs, tokenize_texts
from .options import SOFT_LABEL
from .recipe import RungConfig
from .verbosity import batch_starts

FEATURES_FILE = "features.parquet"  # a feature stage's `id` and `x` (the pair's feature vector) per pair
ProbeKind = Literal["knn", "logreg"]
CleaningAction = Literal["relabel", "drop"]


@torch.inference_mode()
def mean_pooled(model: PreTrainedModel, sequences: list[list[int]], pad_token_id: int, batch_size: int) -> np.ndarray:
    """Mean of the last hidden states over each sequence's tokens, in input order (batched by length)."""
    device = next(model.parameters()).device
    model.eval()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]), reverse=True)
    out: np.ndarray | None = None
    for start in batch_starts(len(order), batch_size, "features"):
        index = order[start : start + batch_size]
        input_ids, attention_mask = pad_batch([sequences[i] for i in index], pad_token_id)
        hidden = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).last_hidden_state
        mask = attention_mask.to(device).unsqueeze(-1).to(hidden.dtype)
        pooled = ((hidden * mask).sum(1) / mask.sum(1)).float().cpu().numpy()
        if out is None:
            out = np.empty((len(sequences), pooled.shape[1]), dtype=np.float32)
        out[index] = pooled
    return out if out is not None else np.empty((0, 0), dtype=np.float32)


def pair_features(model: PreTrainedModel, pairs: Dataset, pad_token_id: int, batch_size: int = 64) -> np.ndarray:
    """`f(chosen) - f(rejected)` per pair of a tokenized split (`chosen_ids`, `rejected_ids`)."""
    chosen = mean_pooled(model, pairs["chosen_ids"], pad_token_id, batch_size)
    rejected = mean_pooled(model, pairs["rejected_ids"], pad_token_id, batch_size)
    return chosen - rejected


def _folds(n: int, folds: int, seed: int) -> np.ndarray:
    """The fold of each of `n` pairs: a seeded permutation cut into `folds` near-equal parts."""
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return fold


def _cross_fit(x: np.ndarray, labels: np.ndarray, folds: int, seed: int, fit_predict) -> np.ndarray:
    """Each fold's probabilities from `fit_predict(x_train, labels_train, x_test)`, fit on the other folds."""
    fold = _folds(len(x), folds, seed)
    out = np.empty(len(x), dtype=np.float64)
    for f in range(folds):
        test, train = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        if len(test):
            out[test] = fit_predict(x[train], labels[train], x[test])
    return out


def knn_probe(x: np.ndarray, labels: np.ndarray, k: int, folds: int, seed: int, paired: bool = True) -> np.ndarray:
    """Cross-fitted k-nearest-neighbour probabilities that `chosen` is better, or for examples (`paired=False`)
    that the label is 1 (see the module docstring)."""
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def fit_predict(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray) -> np.ndarray:
        similarity = test @ train.T
        closeness = np.abs(similarity) if paired else similarity  # a pair's negation is the same pair swapped
        nearest = np.argsort(-closeness, axis=1, kind="stable")[:, : min(k, len(train))]
        sign = np.take_along_axis(similarity, nearest, axis=1) >= 0
        neighbour = train_labels[nearest]
        return np.where(sign, neighbour, 1 - neighbour).mean(axis=1)

    return _cross_fit(unit, labels, folds, seed, fit_predict)


def logreg_probe(
    x: np.ndarray, labels: np.ndarray, l2: float, folds: int, seed: int, paired: bool = True
) -> np.ndarray:
    """Cross-fitted probabilities of a logistic regression, without intercept for pairs and with one for examples
    (`paired=False`; see the module docstring)."""

    def scaled(features: np.ndarray, scale: np.ndarray) -> torch.Tensor:
        out = features / scale
        if not paired:  # the intercept, a constant feature
            out = np.concatenate([out, np.ones((len(out), 1))], axis=1)
        return torch.tensor(out, dtype=torch.float64)

    def fit_predict(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray) -> np.ndarray:
        scale = np.sqrt((train**2).mean(axis=0)) + 1e-8  # unchanged by negating any pair
        weight = _fit_logreg(scaled(train, scale), torch.tensor(train_labels, dtype=torch.float64), l2)
        return torch.sigmoid(scaled(test, scale) @ weight).numpy()

    return _cross_fit(x, labels, folds, seed, fit_predict)


def _fit_logreg(features: torch.Tensor, targets: torch.Tensor, l2: float) -> torch.Tensor:
    """Weights of `sigmoid(features @ w)` minimising the soft-label cross-entropy plus `l2 * |w|^2` (L-BFGS)."""
    features = features.double()
    weight = torch.zeros(features.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(features @ weight, targets)
        loss = loss + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach()


def probe_probabilities(
    x: np.ndarray, labels: np.ndarray, kind: ProbeKind, k: int, l2: float, folds: int, seed: int, paired: bool = True
) -> np.ndarray:
    """The cross-fitted probe of `kind` fit to `labels` on the features `x` (of pairs, or of examples)."""
    if kind == "knn":
        return knn_probe(x, labels, k, folds, seed, paired)
    return logreg_probe(x, labels, l2, folds, seed, paired)


def split_features(
    rung: RungConfig, tokenizer, pairs: Dataset, batch_size: int | None = None, paired: bool = True
) -> Dataset:
    """`id` and `x` (the pair feature, or with `paired=False` the example's) of every pair or example, from the
    rung's pretrained body: `pairs` as the task reads them (conversations rendered), tokenized by `tokenizer`."""
    from transformers import AutoModel

    length, batch = rung.training.max_length, batch_size or rung.training.eval_batch_size
    tokenized = tokenize_pairs(pairs, tokenizer, length) if paired else tokenize_texts(pairs, tokenizer, length)
    with whole_weights():  # each process computes the features of its share of the pairs on the whole body
        model = load_rung_model(rung, AutoModel).to(default_device())
    if paired:
        x = pair_features(model, tokenized, tokenizer.pad_token_id, batch)
    else:
        x = mean_pooled(model, tokenized["input_ids"], tokenizer.pad_token_id, batch)
    return Dataset.from_dict({"id": tokenized["id"], "x": x.tolist()})


def probe_clean(
    pairs: Dataset,
    features: Dataset,
    kind: ProbeKind,
    action: CleaningAction,
    settings: Mapping[str, Any],
    seed: int,
    paired: bool = True,
) -> tuple[Dataset, int]:
    """`pairs` (with `soft_label`) cleaned by a probe of `kind` (`knn`, `logreg`) on `features` ([`split_features`])
    with the probe `settings` (`k`, `l2`, `folds`), which relabels or drops (`action`) the labels it disagrees with;
    and how many labels it disagreed with."""
    row = {row_id: i for i, row_id in enumerate(features["id"])}
    x = np.asarray(features["x"], dtype=np.float64)[[row[row_id] for row_id in pairs["id"]]]
    labels = np.asarray(pairs[SOFT_LABEL], dtype=np.float64)
    probe = probe_probabilities(x, labels, kind, settings["k"], settings["l2"], settings["folds"], seed, paired)
    return clean_labels(pairs, probe, action), int(((probe - 0.5) * (labels - 0.5) < 0).sum())


def clean_labels(pairs: Dataset, probe: np.ndarray, action: CleaningAction) -> Dataset:
    """`pairs` (with `soft_label`) cleaned where the probe disagrees with the label on which response is better:
    relabelled with the probe's probability, or dropped. Adds `probe_label` (the probe's probability)."""
    labels = np.asarray(pairs[SOFT_LABEL], dtype=np.float64)
    disagree = (probe - 0.5) * (labels - 0.5) < 0
    pairs = pairs.add_column("probe_label", probe.tolist())
    if action == "drop":
        return pairs.select(np.flatnonzero(~disagree))
    cleaned = np.where(disagree, probe, labels)
    return pairs.remove_columns(SOFT_LABEL).add_column(SOFT_LABEL, cleaned.tolist())
