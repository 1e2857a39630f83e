"""Binary classification data as Burns et al.'s reference implementation and EleutherAI's w2s format it: one record a
source, each example a text (`txt`) and its ground truth (`hard_label`, 0 or 1).

[`SOURCES`] holds the reference registries' tasks with their hub ids and formatters: OpenAI's `weak-to-strong`
(`amazon_polarity`, `sciq`, `anthropic_hh`, `cosmos_qa`, `boolq`, the tasks of the paper's figures) and the further
tasks of EleutherAI's `w2s` `ds_registry.py`. A formatter writes the text as the references do; where a task has one
right answer among several, a seeded draw shows the right answer (label 1) or a wrong one (label 0), half and half.
Two deliberate differences:

- Each example's draw has a generator of its own, seeded by the run's seed and the example's position in its split
  (`random.Random(f"{seed}:{index}")`): the same examples whatever the order or number of processes that format
  them. The references draw from one generator in the order they map (so their exact draws are not reproduced).
- `openbookqa`: the reference shows the right answer by its letter and a wrong one by its text, so the form of the
  answer gives the label away; here both are texts.

Offline, Anthropic HH as classification (a response, 1 if it is the chosen one) comes from any local pair file in
the hub's format ([`hh_as_classification`], e.g. `../shared/data/hh-single-turn`), and [`synthetic_texts`] turns the
synthetic pairs of graded difficulty into classification for tests.

Example:

```python
>>> from w2s_align.classification_sources import SOURCES, format_example
>>> row = {"question": "What gas do plants take in?", "correct_answer": "carbon dioxide",
...        "distractor1": "oxygen", "distractor2": "helium", "distractor3": "neon", "support": ""}
>>> format_example("sciq", row, seed=0, index=0)
{'txt': 'Q: What gas do plants take in? A: neon', 'hard_label': 0}
>>> SOURCES["sciq"].path, SOURCES["boolq"].splits["test"]
('allenai/sciq', 'validation')
```
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .options import CLASSIFICATION_SOURCES, HARD_LABEL

if TYPE_CHECKING:
    from datasets import Dataset

TEXT = "txt"
Formatter = Callable[[dict[str, Any], random.Random], dict[str, Any]]


@dataclass(frozen=True)
class ClassificationSource:
    """One task as its reference registry loads and formats it.

    Args:
        name (`str`): the registry's name (`sciq`, `ethics-justice`, ...).
        path (`str`): the hub dataset id.
        format (`Formatter`): `(row, rng) -> {"txt": ..., "hard_label": 0 or 1}`.
        config (`str`, *optional*, defaults to `None`): the dataset's configuration.
        splits (`dict[str, str]`, *optional*): the hub split read as `train` and as `test` (the references use a
            validation split as the test split where the hub's test labels are hidden).
        reference (`str`, *optional*, defaults to `"EleutherAI/w2s"`): the registry it follows.
    """

    name: str
    path: str
    format: Formatter
    config: str | None = None
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})
    reference: str = "EleutherAI/w2s"


def _coin(rng: random.Random) -> int:
    return int(rng.random() < 0.5)


def _right_or_wrong(rng: random.Random, right: str, others: list[str]) -> tuple[str, int]:
    """The right answer (label 1) or one of the wrong ones (label 0), half and half."""
    label = _coin(rng)
    return (right if label else rng.choice(others)), label


def _amazon_polarity(row, rng):
    return {TEXT: f"{row['title']} {row['content']}", HARD_LABEL: int(row["label"])}


def _sciq(row, rng):
    answer, label = _right_or_wrong(rng, row["correct_answer"], [row[f"distractor{i}"] for i in (1, 2, 3)])
    return {TEXT: f"Q: {row['question']} A: {answer}", HARD_LABEL: label}


def _sciq_with_support(row, rng):
    answer, label = _right_or_wrong(rng, row["correct_answer"], [row[f"distractor{i}"] for i in (1, 2, 3)])
    text = f'Name: Bob\n\nPassage 1:\n{row["support"]}\n\nQ1: "{row["question"]}" Is the answer "{answer}"?'
    return {TEXT: text, HARD_LABEL: label}


def _anthropic_hh(row, rng):
    label = _coin(rng)
    return {TEXT: row["chosen"] if label else row["rejected"], HARD_LABEL: label}


def _cosmos_qa(row, rng):
    answers = [row[f"answer{i}"] for i in range(4)]
    right = answers[int(row["label"])]
    wrong = [answer for answer in answers if answer != right]
    if "None of the above choices ." in right:  # as the reference: the shown (other) answer is then always wrong
        answer, label = rng.choice(wrong), 0
    else:
        answer, label = _right_or_wrong(rng, right, wrong)
    return {TEXT: f"Context: {row['context']}\nQuestion: {row['question']}\nAnswer: {answer}", HARD_LABEL: label}


def _boolq(row, rng):
    return {TEXT: f"Passage: {row['passage']}\nQuestion: {row['question']}", HARD_LABEL: int(row["answer"])}


def _anli(row, rng):
    text = f"Premise: {row['premise']}\nHypothesis: {row['hypothesis']}\n\nDoes the premise entail the hypothesis?"
    return {TEXT: text, HARD_LABEL: int(row["label"] == 0)}  # 0: entailment


def _sentence(row, rng):
    return {TEXT: row["sentence"], HARD_LABEL: int(row["label"])}


def _dream(row, rng):
    answer, label = _right_or_wrong(rng, row["answer"], [c for c in row["choice"] if c != row["answer"]])
    dialogue = "\n".join(row["dialogue"])
    return {TEXT: f"{dialogue}\n\nQ: {row['question']} A: {answer}", HARD_LABEL: label}


def _ethics_deontology(row, rng):
    text = f"Q: Is the following a morally valid excuse?\n\n{row['scenario']}\n\n{row['excuse']}\n\nA:"
    return {TEXT: text, HARD_LABEL: int(row["label"])}


def _ethics_justice(row, rng):
    text = f"Q: Does this statement exemplify justice?\n\n{row['scenario']}\n\nA:"
    return {TEXT: text, HARD_LABEL: int(row["label"])}


def _ethics_virtue(row, rng):
    text = f"Q: Does this behavior match the adjective that follows?\n\n{row['scenario']}\n\nA:"
    return {TEXT: text, HARD_LABEL: int(row["label"])}


def _ethics_utilitarianism(row, rng):
    label = _coin(rng)
    choices = [row["baseline"], row["less_pleasant"]]  # the baseline is the more pleasant one
    rng.shuffle(choices)
    right = choices.index(row["baseline"])
    shown = right if label else 1 - right
    text = f"Which is more pleasant?\n1) {choices[0]}\n2) {choices[1]} A: {shown + 1}"
    return {TEXT: text, HARD_LABEL: label}


def _mc_taco(row, rng):
    text = f"{row['sentence']}\n\nGiven the above, {row['question']} Is the answer {row['answer']}?"
    return {TEXT: text, HARD_LABEL: int(row["label"])}


def _hellaswag(row, rng):
    endings = row["endings"]
    right = int(row["label"])
    answer, label = _right_or_wrong(rng, endings[right], [e for i, e in enumerate(endings) if i != right])
    listed = "\n".join(endings)
    text = f'Context:\n{row["ctx"]}\n\nContinuations:\n\n{listed}\n\nQ: Is "{answer}" the best continuation?'
    return {TEXT: text, HARD_LABEL: label}


def _multirc(row, rng):
    text = f'Passage:\n\n{row["paragraph"]}\n\nQ: "{row["question"]}" Is the answer "{row["answer"]}"?'
    return {TEXT: text, HARD_LABEL: int(row["label"])}


def _openbookqa(row, rng):
    letters, texts = row["choices"]["label"], row["choices"]["text"]
    right = letters.index(row["answerKey"])
    answer, label = _right_or_wrong(rng, texts[right], [t for i, t in enumerate(texts) if i != right])
    listed = "\n".join(f"{letter}) {text}" for letter, text in zip(letters, texts))
    return {TEXT: f"Q: {row['question_stem']}\n\nChoices:\n{listed}\n\nAnswer: {answer}", HARD_LABEL: label}


def _paws(row, rng):
    text = f"Sent 1: {row['sentence1']}\nSent 2: {row['sentence2']}\n\nQ: Are these sentences semantically equivalent?"
    return {TEXT: text, HARD_LABEL: int(row["label"])}


def _piqa(row, rng):
    solutions = [row["sol1"], row["sol2"]]
    right = int(row["label"])
    answer, label = _right_or_wrong(rng, solutions[right], [solutions[1 - right]])
    return {TEXT: f"Q: {row['goal']} A: {answer}", HARD_LABEL: label}


def _quail(row, rng):
    answers, right = row["answers"], int(row["correct_answer_id"])
    answer, label = _right_or_wrong(rng, answers[right], [a for i, a in enumerate(answers) if i != right])
    text = f'Passage:\n\n{row["context"]}\n\nQ: "{row["question"]}" Is the answer "{answer}"?'
    return {TEXT: text, HARD_LABEL: label}


def _quartz(row, rng):
    texts = row["choices"]["text"]
    right = row["choices"]["label"].index(row["answerKey"])
    answer, label = _right_or_wrong(rng, texts[right], [texts[1 - right]])
    text = f'Passage:\n{row["para"]}\n\nQ: "{row["question"]}" Is the answer "{answer}"?'
    return {TEXT: text, HARD_LABEL: label}


def _social_i_qa(row, rng):
    answers = [row["answerA"], row["answerB"], row["answerC"]]
    right = int(row["label"]) - 1  # "1" to "3"
    answer, label = _right_or_wrong(rng, answers[right], [a for i, a in enumerate(answers) if i != right])
    listed = "\n".join(answers)
    text = (
        f'Context:\n{row["context"]}\n\nQuestion: "{row["question"]}"\n\nChoices:\n{listed}\n\n'
        f'Is the answer "{answer}"?'
    )
    return {TEXT: text, HARD_LABEL: label}


def _wic(row, rng):
    text = (
        f"Sentence 1:\n{row['sentence1']}\n\nSentence 2:\n{row['sentence2']}\n\n"
        f'Q: Does "{row["word"]}" have the same meaning in the above sentences?'
    )
    return {TEXT: text, HARD_LABEL: int(row["label"])}


def _tweet(row, rng):
    return {TEXT: row["text"], HARD_LABEL: int(row["label"])}


VALIDATION_AS_TEST = {"train": "train", "test": "validation"}
OPENAI = "openai/weak-to-strong"

SOURCES: dict[str, ClassificationSource] = {
    source.name: source
    for source in (
        # Burns et al.'s reference implementation (the tasks of the paper's figures)
        ClassificationSource("amazon_polarity", "fancyzhx/amazon_polarity", _amazon_polarity, reference=OPENAI),
        ClassificationSource("sciq", "allenai/sciq", _sciq, reference=OPENAI),
        ClassificationSource("anthropic_hh", "Anthropic/hh-rlhf", _anthropic_hh, reference=OPENAI),
        ClassificationSource(
            "cosmos_qa", "allenai/cosmos_qa", _cosmos_qa, splits=VALIDATION_AS_TEST, reference=OPENAI
        ),
        ClassificationSource("boolq", "google/boolq", _boolq, splits=VALIDATION_AS_TEST, reference=OPENAI),
        # EleutherAI's w2s registry
        ClassificationSource("anli-r2", "facebook/anli", _anli, splits={"train": "train_r2", "test": "test_r2"}),
        ClassificationSource("cola", "nyu-mll/glue", _sentence, config="cola", splits=VALIDATION_AS_TEST),
        ClassificationSource("dream", "dataset-org/dream", _dream),
        ClassificationSource("ethics-deontology", "hendrycks/ethics", _ethics_deontology, config="deontology"),
        ClassificationSource("ethics-justice", "hendrycks/ethics", _ethics_justice, config="justice"),
        ClassificationSource("ethics-virtue", "hendrycks/ethics", _ethics_virtue, config="virtue"),
        ClassificationSource(
            "ethics-utilitarianism", "hendrycks/ethics", _ethics_utilitarianism, config="utilitarianism"
        ),
        # the reference trains on mc_taco's larger test split and tests on its validation split
        ClassificationSource("mc_taco", "CogComp/mc_taco", _mc_taco, splits={"train": "test", "test": "validation"}),
        ClassificationSource("hellaswag", "Rowan/hellaswag", _hellaswag, splits=VALIDATION_AS_TEST),
        ClassificationSource("multirc", "aps/super_glue", _multirc, config="multirc", splits=VALIDATION_AS_TEST),
        ClassificationSource("openbookqa", "allenai/openbookqa", _openbookqa, config="main"),
        ClassificationSource("paws", "google-research-datasets/paws", _paws, config="labeled_final"),
        ClassificationSource("piqa", "ybisk/piqa", _piqa, splits=VALIDATION_AS_TEST),
        ClassificationSource("quail", "textmachinelab/quail", _quail, splits=VALIDATION_AS_TEST),
        ClassificationSource("quartz", "allenai/quartz", _quartz),
        ClassificationSource("social_i_qa", "allenai/social_i_qa", _social_i_qa, splits=VALIDATION_AS_TEST),
        ClassificationSource("sst2", "stanfordnlp/sst2", _sentence, splits=VALIDATION_AS_TEST),
        ClassificationSource("wic", "aps/super_glue", _wic, config="wic", splits=VALIDATION_AS_TEST),
        ClassificationSource("twitter-sentiment", "EleutherAI/twitter-sentiment", _tweet),
        ClassificationSource("sciq_with_support", "allenai/sciq", _sciq_with_support),
    )
}
# `text_classification` (local files already in this format) has no record: `classification_data` reads it as it is.
assert (*SOURCES, "text_classification") == CLASSIFICATION_SOURCES, "options.ClassificationSourceName names them"


def format_example(name: str, row: dict[str, Any], seed: int, index: int) -> dict[str, Any]:
    """Example `index` of a split of source `name`, formatted with its own seeded draw."""
    return SOURCES[name].format(row, random.Random(f"{seed}:{index}"))


def format_rows(name: str, rows: Dataset, seed: int = 0, split: str = "train") -> Dataset:
    """`rows` (a split in the hub's format) as `id`, `txt` and `hard_label` (the source's other columns dropped)."""
    if name not in SOURCES:
        raise ValueError(f"unknown classification source {name!r}; known: {sorted(SOURCES)}")
    return rows.map(
        lambda row, index: {"id": f"{name}-{split}-{index}", **format_example(name, row, seed, index)},
        with_indices=True,
        remove_columns=rows.column_names,
        desc=f"Formatting {name} {split}",
    )


def balanced(rows: Dataset, seed: int = 0) -> Dataset:
    """Half of each label, the majority's surplus dropped at random (EleutherAI's `balance`; OpenAI's registry keeps
    the hub's balance)."""
    labels = rows[HARD_LABEL]
    ones = [i for i, label in enumerate(labels) if label == 1]
    zeros = [i for i, label in enumerate(labels) if label == 0]
    keep = min(len(ones), len(zeros))
    rng = random.Random(seed)
    chosen = sorted(rng.sample(ones, keep) + rng.sample(zeros, keep))
    return rows.select(chosen)


def load_source(name: str, split: str, seed: int = 0, limit: int | None = None, balance: bool = False) -> Dataset:
    """Split `split` (`train` or `test`) of source `name` from the hub, formatted; the first `limit` examples (after
    balancing, when asked)."""
    from datasets import load_dataset

    source = SOURCES[name]
    rows = load_dataset(source.path, source.config, split=source.splits[split])
    formatted = format_rows(name, rows, seed, split)
    if balance:
        formatted = balanced(formatted, seed)
    return formatted if limit is None else formatted.select(range(min(limit, formatted.num_rows)))


def hh_as_classification(pairs: Dataset, seed: int = 0, split: str = "train") -> Dataset:
    """Anthropic HH pairs (`chosen`, `rejected` dialogues, the hub's format, e.g. a local file of it) as the reference
    turns them into classification: one response of each pair, 1 if it is the chosen one. A pair's `kind` (the
    synthetic pairs' difficulty) is kept."""
    formatted = format_rows("anthropic_hh", pairs.select_columns(["chosen", "rejected"]), seed, split)
    if "kind" in pairs.column_names:
        formatted = formatted.add_column("kind", pairs["kind"])
    return formatted


def synthetic_texts(num_examples: int, seed: int = 0, kind_weights: dict[str, float] | None = None) -> Dataset:
    """The synthetic pairs of graded difficulty ([`w2s_align.synthetic.generate_pairs`], its `kind` kept) as HH
    classification: a request with one of its two responses, 1 if it is the harmless one."""
    from datasets import Dataset

    from .synthetic import generate_pairs

    pairs = generate_pairs(num_examples, seed=seed, kind_weights=kind_weights)
    dialogues = Dataset.from_dict(
        {
            "chosen": [p + c for p, c in zip(pairs["prompt"], pairs["chosen"])],
            "rejected": [p + r for p, r in zip(pairs["prompt"], pairs["rejected"])],
            "kind": pairs["kind"],
        }
    )
    return hh_as_classification(dialogues, seed, "synthetic")
