"""Implicit prompts: the one rule by which a pair without a `prompt` is split into its prompt and two responses.

A preference pair may hold two whole conversations (`chosen` and `rejected`) and no `prompt`: their common start is
the prompt. For lists of messages that is their common leading messages (TRL's `extract_prompt`). For texts, TRL cuts
at the first character where they differ, mid-word when both responses start with the same letters ("Assistant: Sure"
| "ly you know"); here the common start is cut back to a word boundary. The pipeline's data sources and
[`~w2s_align.W2SDPOTrainer`] (so `w2s-align dpo` too) both split by [`split_implicit_prompt`]; the reward trainer
scores whole texts, where the split changes nothing.

Example:

```python
>>> from w2s_align.prompts import split_implicit_prompt
>>> split_implicit_prompt("Human: Hi. Assistant: Surely you know.", "Human: Hi. Assistant: Sure, I do.")
{'prompt': 'Human: Hi. Assistant:', 'chosen': ' Surely you know.', 'rejected': ' Sure, I do.'}
```
"""

from __future__ import annotations

import os
import re
from typing import Any


def split_implicit_prompt(chosen: Any, rejected: Any) -> dict[str, Any]:
    """The prompt that two whole conversations share, and each one's response: for messages their common leading
    messages (TRL's `extract_prompt`), for texts their common start cut back to a word boundary (TRL cuts at the
    first differing character, mid-word when both responses start with the same letters).

    >>> split_implicit_prompt("Human: Hi. Assistant: I think so.", "Human: Hi. Assistant: It is good.")
    {'prompt': 'Human: Hi. Assistant:', 'chosen': ' I think so.', 'rejected': ' It is good.'}
    """
    if not isinstance(chosen, str):
        from trl.data_utils import extract_prompt  # it loads torch: only for messages

        return extract_prompt({"chosen": chosen, "rejected": rejected})
    cut = len(os.path.commonprefix([chosen, rejected]))
    ends_a_word = (
        cut == 0
        or chosen[cut - 1].isspace()
        or all((text[cut : cut + 1] or " ").isspace() for text in (chosen, rejected))
    )
    if not ends_a_word:
        last_space = re.search(r"\s\S*$", chosen[:cut])
        cut = last_space.start() + 1 if last_space else 0
    if cut > 0 and chosen[cut - 1] == " ":  # the space belongs to the responses, as TRL splits
        cut -= 1
    return {"prompt": chosen[:cut], "chosen": chosen[cut:], "rejected": rejected[cut:]}


def with_explicit_prompts(dataset: Any) -> Any:
    """`dataset` (a `datasets` `Dataset` or `IterableDataset`, or None) with a `prompt` in every row: the rows without
    one split by [`split_implicit_prompt`]; a dataset whose every row has one is returned as it is."""
    if dataset is None or "prompt" in (dataset.column_names or []):
        return dataset

    def split(row: dict) -> dict:
        return {} if row.get("prompt") else split_implicit_prompt(row["chosen"], row["rejected"])

    kwargs = {"desc": "Splitting implicit prompts"} if hasattr(dataset, "num_rows") else {}
    return dataset.map(split, **kwargs)
