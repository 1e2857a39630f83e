"""Evaluation of policies: log-likelihoods of the two responses of a pair under a policy and its reference.

A policy "prefers" a response by one of three measures, all saved per example:

| measure | margin | used by |
| --- | --- | --- |
| `implicit` | `beta * ((log pi(y_c) - log ref(y_c)) - (log pi(y_r) - log ref(y_r)))` | DPO's implicit reward |
| `logp` | `log pi(y_c) - log pi(y_r)` | the deception paper's preference accuracy (no reference) |
| `avg_logp` | `log pi(y_c) / |y_c| - log pi(y_r) / |y_r|` | SimPO's length-normalised likelihood |

Scoring runs without autograd, in batches of sequences sorted by length; sequences longer than `max_length` lose the
start of their prompt, so every pair is scored.

Example:

```python
>>> from w2s_align.policy_predictions import predict_policy_pairs
>>> predictions = predict_policy_pairs(policy, reference, tokenizer, test_pairs, beta=0.1)  # doctest: +SKIP
>>> predictions.column_names[:4]  # doctest: +SKIP
['id', 'margin', 'prob_chosen', 'correct']
```
"""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .distributed import sharded_map
from .labeling import pad_batch
from .options import MEASURES
from .reward_predictions import CARRIED_COLUMNS
from .verbosity import batch_starts


def tokenize_completions(
    pairs: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    memo: dict[tuple[str, str], tuple[list[int], int]] | None = None,
) -> tuple[list[list[int]], list[int]]:
    """Token ids of prompt+response for every chosen then every rejected response, and each completion's length.

    The completion starts where the tokenized prompt and prompt+response diverge; an eos token ends it. `memo` keeps
    each (prompt, response)'s result for this tokenizer and `max_length`, so a split scored again is not tokenized
    again.
    """
    eos = tokenizer.eos_token or ""
    memo = {} if memo is None else memo
    sequences, completion_lengths = [], []
    for side in ("chosen", "rejected"):
        for prompt, response in zip(pairs["prompt"], pairs[side]):
            if (prompt, response) not in memo:
                prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
                full = tokenizer(prompt + response + eos, add_special_tokens=False)["input_ids"]
                shared = 0
                while shared < min(len(prompt_ids), len(full)) and prompt_ids[shared] == full[shared]:
                    shared += 1
                completion = max(len(full) - shared, 1)
                full = full[-max_length:]
                memo[prompt, response] = full, min(completion, len(full) - 1)
            full, completion = memo[prompt, response]
            sequences.append(full)
            completion_lengths.append(completion)
    return sequences, completion_lengths


def sequence_logps(
    model: PreTrainedModel, sequences: list[list[int]], completion_lengths: list[int], pad_id: int, batch_size: int
) -> np.ndarray:
    """Summed log-probability of the last `completion_lengths[i]` tokens of each sequence, in input order (sharded
    across processes when there are several)."""

    def local(shard: list[tuple[list[int], int]]) -> list[float]:
        return _logps_local(model, [s for s, _ in shard], [n for _, n in shard], pad_id, batch_size).tolist()

    return np.asarray(sharded_map(local, list(zip(sequences, completion_lengths))), dtype=np.float64)


@torch.inference_mode()
def _logps_local(
    model: PreTrainedModel, sequences: list[list[int]], completion_lengths: list[int], pad_id: int, batch_size: int
) -> np.ndarray:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]), reverse=True)
    out = np.empty(len(sequences), dtype=np.float64)
    for start in batch_starts(len(order), batch_size, "scoring responses"):
        index = order[start : start + batch_size]
        input_ids, attention = pad_batch([sequences[i] for i in index], pad_id)
        ends = attention.sum(dim=1, keepdim=True)
        starts = ends - torch.tensor([completion_lengths[i] for i in index])[:, None]
        positions = torch.arange(input_ids.size(1))[None, :]
        completion = (positions >= starts) & (positions < ends)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
        logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None].to(device))[..., 0]
        mask = completion[:, 1:].to(device)
        out[index] = (logps * mask).sum(dim=1).cpu().numpy()
    model.train(was_training)
    return out


def predict_policy_pairs(
    policy: PreTrainedModel,
    reference: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Dataset,
    beta: float,
    measure: str = "implicit",
    batch_size: int = 64,
    max_length: int = 512,
    memo: dict | None = None,
) -> Dataset:
    """Per-example predictions of a policy: log-likelihoods, lengths, and the margin and correctness by every measure.

    `margin`, `prob_chosen` (`sigmoid(margin)`) and `correct` follow `measure`, the one PGR and the deception analyzer
    use; `margin_<m>` and `correct_<m>` are saved for every measure (`implicit` needs a reference). `memo`: see
    [`tokenize_completions`].
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    sequences, lengths = tokenize_completions(pairs, tokenizer, max_length, memo)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    n = pairs.num_rows
    logps = sequence_logps(policy, sequences, lengths, pad, batch_size)
    lengths = np.asarray(lengths, dtype=np.float64)
    columns = {
        "id": pairs["id"],
        "logp_chosen": logps[:n].tolist(),
        "logp_rejected": logps[n:].tolist(),
        "length_chosen": lengths[:n].astype(int).tolist(),
        "length_rejected": lengths[n:].astype(int).tolist(),
    }
    margins = {
        "logp": logps[:n] - logps[n:],
        "avg_logp": logps[:n] / lengths[:n] - logps[n:] / lengths[n:],
    }
    if reference is not None:
        ref = sequence_logps(reference, sequences, lengths.astype(int).tolist(), pad, batch_size)
        columns["ref_logp_chosen"] = ref[:n].tolist()
        columns["ref_logp_rejected"] = ref[n:].tolist()
        margins["implicit"] = beta * ((logps[:n] - ref[:n]) - (logps[n:] - ref[n:]))
    if measure not in margins:
        raise ValueError(f"the {measure!r} measure needs a reference model")
    for name, margin in margins.items():
        columns[f"margin_{name}"] = margin.tolist()
        columns[f"correct_{name}"] = (margin > 0).tolist()
    primary = margins[measure]
    columns["margin"] = primary.tolist()
    columns["prob_chosen"] = (1 / (1 + np.exp(-primary))).tolist()
    columns["correct"] = (primary > 0).tolist()
    for name in CARRIED_COLUMNS:
        if name in pairs.column_names:
            columns[name] = pairs[name]
    return Dataset.from_dict(columns)
