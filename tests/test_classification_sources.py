"""The reference registries' classification tasks (issue 40): each formatter on a row in its hub dataset's format.

No hub here: each row below is written in the hub dataset's schema, and each formatter is checked for the rule its
reference applies: the text it writes, a label of 0 or 1, the right answer shown exactly when the label is 1.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from datasets import Dataset

from w2s_align.classification_sources import (
    SOURCES,
    balanced,
    format_example,
    format_rows,
    hh_as_classification,
    synthetic_texts,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-single-turn"

# A row of each source in its hub schema, with the text shown when its label is 1 (None: a fixed label, no draw).
ROWS = {
    "amazon_polarity": ({"title": "Great", "content": "Works well.", "label": 1}, "Great Works well."),
    "sciq": (
        {"question": "Q?", "correct_answer": "right", "distractor1": "w1", "distractor2": "w2", "distractor3": "w3",
         "support": "Because."},
        "Q: Q? A: right",
    ),
    "sciq_with_support": (
        {"question": "Q?", "correct_answer": "right", "distractor1": "w1", "distractor2": "w2", "distractor3": "w3",
         "support": "Because."},
        'Name: Bob\n\nPassage 1:\nBecause.\n\nQ1: "Q?" Is the answer "right"?',
    ),
    "anthropic_hh": ({"chosen": "H: hi A: safe", "rejected": "H: hi A: harm"}, "H: hi A: safe"),
    "cosmos_qa": (
        {"context": "C.", "question": "Q?", "answer0": "a0", "answer1": "right", "answer2": "a2", "answer3": "a3",
         "label": 1},
        "Context: C.\nQuestion: Q?\nAnswer: right",
    ),
    "boolq": ({"passage": "P.", "question": "q", "answer": True}, "Passage: P.\nQuestion: q"),
    "anli-r2": (
        {"premise": "P.", "hypothesis": "H.", "label": 0},
        "Premise: P.\nHypothesis: H.\n\nDoes the premise entail the hypothesis?",
    ),
    "cola": ({"sentence": "A sentence.", "label": 1}, "A sentence."),
    "dream": (
        {"dialogue": ["M: hi", "W: bye"], "question": "Q?", "choice": ["w1", "right", "w2"], "answer": "right"},
        "M: hi\nW: bye\n\nQ: Q? A: right",
    ),
    "ethics-deontology": (
        {"scenario": "S.", "excuse": "E.", "label": 1},
        "Q: Is the following a morally valid excuse?\n\nS.\n\nE.\n\nA:",
    ),
    "ethics-justice": ({"scenario": "S.", "label": 1}, "Q: Does this statement exemplify justice?\n\nS.\n\nA:"),
    "ethics-virtue": (
        {"scenario": "S.", "label": 1},
        "Q: Does this behavior match the adjective that follows?\n\nS.\n\nA:",
    ),
    "ethics-utilitarianism": ({"baseline": "nice", "less_pleasant": "bad"}, None),
    "mc_taco": (
        {"sentence": "S.", "question": "how long?", "answer": "an hour", "label": 1},
        "S.\n\nGiven the above, how long? Is the answer an hour?",
    ),
    "hellaswag": (
        {"ctx": "C", "endings": ["e0", "right", "e2", "e3"], "label": "1"},
        'Context:\nC\n\nContinuations:\n\ne0\nright\ne2\ne3\n\nQ: Is "right" the best continuation?',
    ),
    "multirc": (
        {"paragraph": "P.", "question": "Q?", "answer": "A", "label": 1},
        'Passage:\n\nP.\n\nQ: "Q?" Is the answer "A"?',
    ),
    "openbookqa": (
        {"question_stem": "Q?", "choices": {"text": ["w1", "right", "w2", "w3"], "label": ["A", "B", "C", "D"]},
         "answerKey": "B"},
        "Q: Q?\n\nChoices:\nA) w1\nB) right\nC) w2\nD) w3\n\nAnswer: right",
    ),
    "paws": (
        {"sentence1": "One.", "sentence2": "Two.", "label": 1},
        "Sent 1: One.\nSent 2: Two.\n\nQ: Are these sentences semantically equivalent?",
    ),
    "piqa": ({"goal": "G", "sol1": "wrong", "sol2": "right", "label": 1}, "Q: G A: right"),
    "quail": (
        {"context": "C.", "question": "Q?", "answers": ["w0", "w1", "right", "w3"], "correct_answer_id": 2},
        'Passage:\n\nC.\n\nQ: "Q?" Is the answer "right"?',
    ),
    "quartz": (
        {"para": "P.", "question": "Q?", "choices": {"text": ["right", "wrong"], "label": ["A", "B"]},
         "answerKey": "A"},
        'Passage:\nP.\n\nQ: "Q?" Is the answer "right"?',
    ),
    "social_i_qa": (
        {"context": "C.", "question": "Q?", "answerA": "wa", "answerB": "wb", "answerC": "right", "label": "3"},
        'Context:\nC.\n\nQuestion: "Q?"\n\nChoices:\nwa\nwb\nright\n\nIs the answer "right"?',
    ),
    "sst2": ({"sentence": "Fine film.", "label": 1}, "Fine film."),
    "wic": (
        {"sentence1": "A bank.", "sentence2": "The bank.", "word": "bank", "label": 1},
        'Sentence 1:\nA bank.\n\nSentence 2:\nThe bank.\n\n'
        'Q: Does "bank" have the same meaning in the above sentences?',
    ),
    "twitter-sentiment": ({"text": "happy", "label": 1}, "happy"),
}  # fmt: skip


def test_every_source_has_a_row_here():
    assert sorted(ROWS) == sorted(SOURCES)
    assert {name for name, source in SOURCES.items() if source.reference == "openai/weak-to-strong"} == {
        "amazon_polarity", "sciq", "anthropic_hh", "cosmos_qa", "boolq",
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_formatter_writes_its_references_text_and_a_label_that_says_whether_the_right_answer_is_shown(name):
    row, right_text = ROWS[name]
    examples = [format_example(name, row, seed=0, index=index) for index in range(40)]
    assert all(set(example) == {"txt", "hard_label"} and example["hard_label"] in (0, 1) for example in examples)
    assert examples == [format_example(name, row, seed=0, index=index) for index in range(40)]  # seeded
    labels = Counter(example["hard_label"] for example in examples)
    draws = name in ("sciq", "sciq_with_support", "anthropic_hh", "cosmos_qa", "dream", "ethics-utilitarianism",
                     "hellaswag", "openbookqa", "piqa", "quail", "quartz", "social_i_qa")  # fmt: skip
    if draws:  # half and half, from the seed: both labels in 40 draws
        assert labels[0] and labels[1]
        assert format_example(name, row, 1, 0) != format_example(name, row, 2, 0) or any(
            format_example(name, row, seed, 0) != format_example(name, row, 0, 0) for seed in range(1, 9)
        )
    if right_text is not None:
        for example in examples:
            assert (example["txt"] == right_text) == bool(example["hard_label"]), example
    else:  # utilitarianism: the number shown is the more pleasant option's exactly when the label is 1
        for example in examples:
            first, second = example["txt"].split("\n")[1:3]
            pleasant = "1" if "nice" in first else "2"
            assert example["txt"].endswith(f"A: {pleasant}") == bool(example["hard_label"]), example


def test_fixed_labels_follow_the_hub_label():
    assert format_example("anli-r2", {**ROWS["anli-r2"][0], "label": 2}, 0, 0)["hard_label"] == 0
    assert format_example("boolq", {**ROWS["boolq"][0], "answer": False}, 0, 0)["hard_label"] == 0


def test_a_right_answer_of_none_of_the_above_is_never_shown_as_cosmos_qa_reference_does():
    row = {**ROWS["cosmos_qa"][0], "answer1": "None of the above choices ."}
    assert {format_example("cosmos_qa", row, 0, i)["hard_label"] for i in range(20)} == {0}


def test_openbookqa_shows_every_answer_as_text_not_the_right_one_as_its_letter():
    row = ROWS["openbookqa"][0]
    answers = {format_example("openbookqa", row, 0, i)["txt"].rsplit("Answer: ", 1)[1] for i in range(40)}
    assert "B" not in answers and "right" in answers


def test_format_rows_names_each_example_and_refuses_an_unknown_source():
    rows = Dataset.from_list([ROWS["sciq"][0]] * 3)
    formatted = format_rows("sciq", rows, seed=0, split="test")
    assert formatted.column_names == ["id", "txt", "hard_label"]
    assert formatted["id"] == ["sciq-test-0", "sciq-test-1", "sciq-test-2"]
    with pytest.raises(ValueError, match="unknown classification source 'scika'"):
        format_rows("scika", rows)


def test_balanced_keeps_half_of_each_label():
    rows = Dataset.from_dict({"txt": [str(i) for i in range(10)], "hard_label": [1] * 7 + [0] * 3})
    kept = balanced(rows, seed=0)
    assert Counter(kept["hard_label"]) == {1: 3, 0: 3}
    assert kept["txt"][-3:] == ["7", "8", "9"]  # every minority example kept, in order


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/hh-single-turn is not beside the checkout")
def test_offline_hh_as_classification_from_the_shared_single_turn_files():
    with gzip.open(SHARED / "harmless_test.jsonl.gz", "rt") as f:
        pairs = Dataset.from_list([json.loads(line) for _, line in zip(range(200), f)])
    examples = hh_as_classification(pairs, seed=0, split="test")
    assert examples.num_rows == 200
    for pair, example in zip(pairs, examples):
        assert example["txt"] == (pair["chosen"] if example["hard_label"] else pair["rejected"])
    assert 60 < sum(examples["hard_label"]) < 140


def test_synthetic_texts_keep_the_difficulty_of_their_pairs():
    examples = synthetic_texts(60, seed=0)
    assert examples.column_names == ["id", "txt", "hard_label", "kind"]
    assert set(examples["kind"]) == {"surface", "context", "paraphrase"}
    assert synthetic_texts(60, seed=0)["txt"] == examples["txt"]
