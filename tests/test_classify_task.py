"""The classification task in the pipeline (`task: classify`, issue 40): its data, its checks, its predictions, and a
tiny run end to end (ceilings, weak labels, students, PGR), with no ground truth in a student's training set.

What replaces the pair-swap invariance of the pairwise losses is the label flip (`p -> 1 - p` with the label flipped
gives the same loss, tests/test_classifier_trainer.py); here the same holds for what is saved: a classifier's
`prob_chosen` (its probability on the true class) and `correct` do not change when class 1 and class 0 trade names.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from w2s_align.classification_data import load_classification_splits
from w2s_align.classifier_predictions import classifier_predictions
from w2s_align.data import load_splits
from w2s_align.errors import W2SInputError
from w2s_align.recipe import DataConfig
from w2s_align.recipe_yaml import recipe_from_dict


def classify(raw: dict, **changes) -> dict:
    return {**raw, "task": "classify", **changes}


def test_a_classification_source_needs_task_classify(tiny_recipe):
    tiny_recipe["data"] = {"source": "sciq", "gt_size": 10, "w2s_size": 10, "test_size": 10}
    with pytest.raises(W2SInputError, match="'sciq' is a classification source .* set task: classify"):
        recipe_from_dict(tiny_recipe)
    assert recipe_from_dict(classify(tiny_recipe)).task == "classify"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"conflicts": {"settings": ["none", "explicit"], "alphas": [0.5]}}, "'conflicts.settings': a conflict"),
    ],
)
def test_classify_refuses_what_reads_preference_pairs_with_the_reason(tiny_recipe, changes, message):
    recipe_from_dict({**tiny_recipe, **changes})  # a pair task takes them
    with pytest.raises(W2SInputError, match=message):
        recipe_from_dict(classify(tiny_recipe, **changes))


def test_each_pair_becomes_one_example_of_one_of_its_responses_labelled_by_the_ground_truth():
    config = DataConfig(source="synthetic", gt_size=80, w2s_size=80, test_size=80, seed=3)
    pairs, examples = load_splits(config), load_classification_splits(config)
    for split in ("gt", "w2s", "test"):
        rows = examples[split]
        assert rows.column_names == ["id", "txt", "gt_label", "kind"]
        assert list(rows["id"]) == list(pairs[split]["id"])  # the same pairs, cut and checked as a pair run's
        preferred = 0
        for example, pair in zip(rows, pairs[split]):
            truth = pair["gt_label"] if split != "test" else 1.0  # test pairs keep the preferred response first
            responses = {pair["prompt"] + pair["chosen"]: truth, pair["prompt"] + pair["rejected"]: 1.0 - truth}
            assert example["txt"] in responses and example["gt_label"] == responses[example["txt"]]
            preferred += example["gt_label"] == 1.0
        assert 0.3 < preferred / rows.num_rows < 0.7, f"{split}: the response shown is not a fair draw"


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_local_classification_files_are_cut_and_a_test_text_never_trains(tmp_path):
    train = [{"txt": f"text {i}", "hard_label": i % 2} for i in range(40)] + [{"txt": "shared", "hard_label": 1}]
    test = [{"txt": f"held out {i}", "hard_label": i % 2} for i in range(20)] + [{"txt": "shared", "hard_label": 1}]
    files = {
        "train": str(_write_jsonl(tmp_path / "train.jsonl", train)),
        "test": str(_write_jsonl(tmp_path / "t.jsonl", test)),
    }
    splits = load_classification_splits(
        DataConfig(source="text_classification", files=files, gt_size=20, test_size=21)
    )
    assert {name: split.num_rows for name, split in splits.items()} == {"gt": 20, "w2s": 20, "test": 21}
    assert "shared" not in {*splits["gt"]["txt"], *splits["w2s"]["txt"]}, "a test text is in a training split"
    assert set(splits["gt"]["gt_label"]) == {0.0, 1.0}


def test_a_label_other_than_0_or_1_is_refused_naming_the_file(tmp_path):
    rows = [{"txt": "a", "hard_label": 1}, {"txt": "b", "hard_label": 2}]
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(W2SInputError, match=r"bad.jsonl.*hard_label must be 0 or 1, found \[2\]"):
        load_classification_splits(DataConfig(source="text_classification", path=str(path), gt_size=1, w2s_size=0))


def test_saved_predictions_do_not_depend_on_which_class_is_called_1():
    rows = Dataset.from_dict({"id": list("abcd"), "gt_label": [1.0, 0.0, 1.0, 0.0]})
    logits = np.array([2.0, 2.0, -0.5, -3.0])
    flipped = rows.remove_columns("gt_label").add_column("gt_label", [1.0 - g for g in rows["gt_label"]])
    first, second = classifier_predictions(rows, logits), classifier_predictions(flipped, -logits)
    np.testing.assert_allclose(first["prob_chosen"], second["prob_chosen"])
    assert first["correct"] == second["correct"] == [True, False, False, True]


@pytest.mark.slow
def test_a_tiny_classification_run_trains_ceilings_labels_and_students_without_the_ground_truth(
    tiny_recipe, monkeypatch
):
    from w2s_align.classifier_trainer import W2SClassifierTrainer
    from w2s_align.pipeline import W2SPipeline

    seen: list[list[str]] = []
    original = W2SClassifierTrainer.__init__

    def spy(self, *args, **kwargs):
        seen.append(list(kwargs["train_dataset"].column_names))
        original(self, *args, **kwargs)

    monkeypatch.setattr(W2SClassifierTrainer, "__init__", spy)
    recipe = recipe_from_dict(classify(tiny_recipe))
    lines: list[str] = []
    metrics = W2SPipeline(recipe, log=lines.append).run()
    assert seen and all(columns == ["input_ids", "soft_label"] for columns in seen), seen
    assert "data: gt 48, w2s 48, test 40 examples (synthetic)" in lines
    keys = {
        "tiny-l1.gt.seed0",
        "tiny-l2.gt.seed0",
        "tiny-l2.from-tiny-l1.xent.seed0",
        "tiny-l2.from-tiny-l1.logconf.seed0",
    }
    assert set(metrics["models"]) == keys
    run_dir = Path(tiny_recipe["output_dir"])
    test_ids = list(load_classification_splits(recipe.data)["test"]["id"])
    for key in keys:
        predictions = Dataset.from_parquet(str(run_dir / "predictions" / f"{key}.parquet"))
        assert list(predictions["id"]) == test_ids
        prob_1 = np.asarray(predictions["prob_1"])
        truth = np.asarray(predictions["gt_label"]) > 0.5
        np.testing.assert_allclose(predictions["prob_chosen"], np.where(truth, prob_1, 1 - prob_1))
        assert metrics["models"][key]["accuracy"] == pytest.approx(np.mean(predictions["correct"]))
    rows = {row["method"]: row for row in metrics["students"]}
    assert set(rows) == {"xent", "logconf"}
    for row in rows.values():
        assert row["student_accuracy_ci"] is not None and row["gap_ci"] is not None
    labels = next((run_dir / "labels" / "tiny-l1.seed0" / "data").glob("w2s-*.parquet"))
    soft = np.asarray(Dataset.from_parquet(str(labels))["soft_label"])
    assert ((0 < soft) & (soft < 1)).all()
    card = next(run_dir.glob("stages/train-tiny-l2.from-tiny-l1.xent.seed0-*/model/README.md")).read_text()
    assert (
        "W2S Classifier" in card and "2312.09390" in card and "- Trained on the labels of: `tiny-l1.gt.seed0`" in card
    )
    assert "Performance gap recovered" in (run_dir / "report.md").read_text()


@pytest.mark.slow
def test_bootstrapping_filters_probes_and_ensembles_run_on_classifiers(tiny_recipe):
    from w2s_align.pipeline import W2SPipeline

    tiny_recipe["ladder"].insert(0, {**tiny_recipe["ladder"][0], "name": "tiny-r", "random_init": True})
    tiny_recipe.update(
        methods=["xent"],
        filter_threshold=0.5,
        pairs=[
            {"weak": "tiny-l1", "strong": "tiny-l2", "label_filters": ["confidence", "oracle", "knn-relabel"]},
            {"weak": "tiny-r", "strong": "tiny-l2", "via": ["tiny-l1"]},
            {"weak": "tiny-l1", "strong": "tiny-l2", "ensemble": {"seeds": 2}},
        ],
    )
    metrics = W2SPipeline(recipe_from_dict(classify(tiny_recipe)), log=lambda line: None).run()
    rows = {(row["label_filter"], row["mitigation"], tuple(row["via"])): row for row in metrics["students"]}
    assert {key[0] for key in rows} >= {"confidence", "oracle", "random", "knn-relabel"}
    assert any(key[2] == ("tiny-l1",) for key in rows), "no bootstrapped student"
    ensembles = [key for key in metrics["models"] if "+" in key or "ensemble" in key]
    assert ensembles, sorted(metrics["models"])
    for row in metrics["students"]:
        assert 0.0 <= row["student_accuracy"] <= 1.0 and row["student_accuracy_ci"] is not None


def test_a_registry_task_loads_from_a_local_copy_in_the_hubs_format_with_the_references_splits(tmp_path):
    from datasets import DatasetDict

    def sciq_rows(n: int, offset: int) -> Dataset:
        return Dataset.from_dict(
            {
                "question": [f"Question {offset + i}?" for i in range(n)],
                "correct_answer": [f"right {offset + i}" for i in range(n)],
                **{f"distractor{d}": [f"wrong{d} {offset + i}" for i in range(n)] for d in (1, 2, 3)},
                "support": [""] * n,
            }
        )

    # cosmos_qa's record reads the hub's validation split as its test split (its test labels are hidden), and its own
    # columns: a copy of another task's rows is refused, naming what is missing
    DatasetDict({"train": sciq_rows(30, 0), "validation": sciq_rows(12, 100)}).save_to_disk(tmp_path / "copy")
    config = DataConfig(source="cosmos_qa", path=str(tmp_path / "copy"), gt_size=10, w2s_size=10)
    with pytest.raises(W2SInputError, match=r"copy\[train\]: no column 'answer0' for source 'cosmos_qa'"):
        load_classification_splits(config)
    DatasetDict({"train": sciq_rows(30, 0), "test": sciq_rows(12, 100)}).save_to_disk(tmp_path / "sciq")
    splits = load_classification_splits(
        DataConfig(source="sciq", path=str(tmp_path / "sciq"), gt_size=10, w2s_size=10)
    )
    assert {name: split.num_rows for name, split in splits.items()} == {"gt": 10, "w2s": 10, "test": 12}
    for row in splits["test"]:
        assert row["txt"].startswith("Q: Question 1") and row["id"].startswith("sciq-test-")
        assert row["gt_label"] == float(" A: right " in row["txt"])
