"""Data sources against the real files in ../shared/data and local files, split disjointness and determinism."""

import dataclasses
import gzip
import json

import pytest
from datasets import Dataset, DatasetDict

from w2s_align.data import _synthetic, load_helpful_pairs, load_splits, random_orientation, split_dialogue
from w2s_align.errors import W2SInputError
from w2s_align.recipe import DataConfig, HelpfulDataConfig


def write_jsonl(path, rows, gz=False):
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path


def pairs(n, tag="x"):
    return [{"prompt": f"Q{tag}{i}?", "chosen": f" good {i}", "rejected": f" bad {i}"} for i in range(n)]


# ---------------------------------------------------------------- real data
def test_hh_single_turn_local_copy_gives_the_papers_splits(shared_data):
    splits = load_splits(DataConfig(source="hh_single_turn", path=str(shared_data / "hh-single-turn")))
    assert {name: split.num_rows for name, split in splits.items()} == {"gt": 4000, "w2s": 4000, "test": 3000}
    row = splits["test"][0]
    assert row["prompt"].startswith("\n\nHuman: ") and row["prompt"].endswith("\n\nAssistant:")
    assert row["prompt"].count("\n\nHuman:") == 1
    assert "\n\nAssistant:" not in row["chosen"] and "\n\nAssistant:" not in row["rejected"]
    assert row["chosen"] != row["rejected"]


def test_hh_single_turn_subsets_are_deterministic_and_seeded(shared_data):
    config = dict(
        source="hh_single_turn", path=str(shared_data / "hh-single-turn"), gt_size=100, w2s_size=100, test_size=100
    )
    first = load_splits(DataConfig(**config, seed=1))
    again = load_splits(DataConfig(**config, seed=1))
    other = load_splits(DataConfig(**config, seed=2))
    for split in ("gt", "w2s", "test"):
        assert first[split]["id"] == again[split]["id"]
    assert first["gt"]["id"] != other["gt"]["id"]
    ids = [set(first[split]["id"]) for split in ("gt", "w2s", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_hh_rlhf_multi_turn_dialogues_split_into_prompt_and_final_response(shared_data):
    config = DataConfig(
        source="hh_rlhf",
        files={"all": str(shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl.gz")},
        gt_size=600,
        w2s_size=600,
        test_size=None,
    )
    splits = load_splits(config)
    assert splits["test"].num_rows == 1800 - 1200
    multi_turn = [p for p in splits["gt"]["prompt"] if p.count("\n\nHuman:") > 1]
    assert multi_turn, "harmless-base holds multi-turn dialogues"
    with gzip.open(shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl.gz", "rt") as handle:
        raw = [json.loads(line) for line in handle]
    row = splits["gt"][0]
    index = int(row["id"].split("-")[1])
    # training pairs are stored in a random order; `gt_label` says whether `chosen` is the preferred response
    preferred, other = (row["chosen"], row["rejected"]) if row["gt_label"] == 1.0 else (row["rejected"], row["chosen"])
    assert row["prompt"] + preferred == raw[index]["chosen"]
    assert row["prompt"] + other == raw[index]["rejected"]


def test_hh_rlhf_local_directory_with_data_dir(shared_data):
    # The hub layout: <dir>/<data_dir>/{train,test}.jsonl.gz; this copy has the test file only.
    with pytest.raises(W2SInputError, match="need gt/w2s/test or train/test"):
        load_splits(DataConfig(source="hh_rlhf", path=str(shared_data / "hh-rlhf"), data_dir="harmless-base"))


def test_single_turn_filter_on_multi_turn_file(shared_data):
    config = DataConfig(
        source="hh_single_turn",
        files={"all": str(shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl.gz")},
        gt_size=100,
        w2s_size=100,
    )
    splits = load_splits(config)
    total = sum(split.num_rows for split in splits.values())
    assert 200 < total < 1800
    assert all(p.count("\n\nHuman:") == 1 for split in splits.values() for p in split["prompt"])


def test_split_dialogue():
    text = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: like this"
    assert split_dialogue(text) == ("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant:", " like this")


# ---------------------------------------------------------------- PKU-SafeRLHF format
def pku_rows(n, start=0):
    return [
        {
            "prompt": f"question {i}",
            "response_0": f"answer zero {i}",
            "response_1": f"answer one {i}",
            "is_response_0_safe": i % 2 == 0,
            "is_response_1_safe": True,
            "better_response_id": 0,
            "safer_response_id": i % 2,
        }
        for i in range(start, start + n)
    ]


def test_pku_saferlhf_keeps_both_preferences(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", pku_rows(20))
    write_jsonl(tmp_path / "test.jsonl", pku_rows(6, start=100))
    splits = load_splits(DataConfig(source="pku_saferlhf", path=str(tmp_path), gt_size=10, w2s_size=10))
    rows = {row["id"]: row for split in ("gt", "w2s") for row in splits[split]}
    assert len(rows) == 20

    def as_preferred(row: dict) -> tuple[str, str, int]:  # undo the random storage order of training pairs
        if row["gt_label"] == 1.0:
            return row["chosen"], row["rejected"], row["helpful_label"]
        return row["rejected"], row["chosen"], 1 - row["helpful_label"]

    assert as_preferred(rows["train-000000"]) == (" answer zero 0", " answer one 0", 1)  # safer = 0 = better
    # safer = 1, better = 0: the objectives conflict
    assert as_preferred(rows["train-000001"]) == (" answer one 1", " answer zero 1", 0)
    assert rows["train-000001"]["prompt"] == "\n\nHuman: question 1\n\nAssistant:"
    assert {row["gt_label"] for row in rows.values()} == {0.0, 1.0}


# ---------------------------------------------------------------- local files
@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "parquet"])
def test_local_files_per_split(tmp_path, fmt):
    files = {}
    for split, n in (("gt", 8), ("w2s", 6), ("test", 4)):
        path = tmp_path / f"{split}.{fmt}"
        if fmt == "parquet":
            Dataset.from_list(pairs(n, split)).to_parquet(str(path))
        else:
            write_jsonl(path, pairs(n, split), gz=fmt.endswith("gz"))
        files[split] = str(path)
    splits = load_splits(DataConfig(source="preference", files=files))
    assert [splits[s].num_rows for s in ("gt", "w2s", "test")] == [8, 6, 4]
    assert splits["gt"][0]["prompt"] == "Qgt0?"


def test_local_directory_and_optional_prompt(tmp_path):
    rows = [{"chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(10)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", [{"chosen": f"fine {i}", "rejected": f"poor {i}"} for i in range(3)])
    splits = load_splits(DataConfig(source="preference", path=str(tmp_path), gt_size=5))
    assert splits["gt"].num_rows == 5 and splits["w2s"].num_rows == 5 and splits["test"].num_rows == 3
    assert splits["gt"][0]["prompt"] == ""


def test_ids_of_several_types_are_kept_as_text(tmp_path):
    # a file whose ids are numbers on some rows and text on others (datasets loads them as a JSON column)
    rows = [{"id": i if i % 2 == 0 else f"x{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(12)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    test = [{"id": 7, "chosen": "fine", "rejected": "poor"}, {"id": "t", "chosen": "ok", "rejected": "no"}]
    write_jsonl(tmp_path / "test.jsonl", test)
    splits = load_splits(DataConfig(source="preference", path=str(tmp_path), gt_size=6))
    ids = [row_id for split in splits.values() for row_id in split["id"]]
    assert all(isinstance(row_id, str) for row_id in ids)
    assert sorted([*splits["gt"]["id"], *splits["w2s"]["id"]]) == sorted(str(row["id"]) for row in rows)


def test_implicit_prompt_is_the_common_start_of_the_two_texts(tmp_path):
    # The responses start with the same letters ("I t..."): the prompt still ends at the word boundary.
    rows = [
        {"chosen": f"Human: step {i}? Assistant: I think so", "rejected": f"Human: step {i}? Assistant: It is no"}
        for i in range(4)
    ]
    splits = load_splits(DataConfig(source="preference", files={"all": str(write_jsonl(tmp_path / "a.jsonl", rows))},
                                    gt_size=1, w2s_size=1, test_size=2))  # fmt: skip
    row = splits["test"][0]
    assert row["prompt"].endswith("? Assistant:") and {row["chosen"], row["rejected"]} == {" I think so", " It is no"}


def test_a_hub_dataset_with_a_config_and_its_own_split_names(monkeypatch):
    from datasets import Dataset, DatasetDict

    asked = {}

    def load_dataset(path, name=None, data_dir=None):
        asked.update(path=path, name=name)
        split = lambda tag, n: Dataset.from_list(pairs(n, tag))  # noqa: E731
        return DatasetDict({"train_prefs": split("t", 10), "test_prefs": split("e", 4), "train_sft": split("s", 3)})

    monkeypatch.setattr("datasets.load_dataset", load_dataset)
    config = DataConfig(
        source="preference", path="org/prefs", config_name="v2", gt_size=5, w2s_size=5,
        split_names={"train": "train_prefs", "test": "test_prefs"},
    )  # fmt: skip
    splits = load_splits(config)
    assert asked == {"path": "org/prefs", "name": "v2"}
    assert [splits[s].num_rows for s in ("gt", "w2s", "test")] == [5, 5, 4]
    assert splits["test"][0]["prompt"].startswith("Qe")
    config.split_names = {"train": "train_pref", "test": "test_prefs"}
    with pytest.raises(W2SInputError, match="data.split_names.train: 'org/prefs' has no split 'train_pref'"):
        load_splits(config)


def chat(i, answer):
    return [{"role": "user", "content": f"question {i}?"}, {"role": "assistant", "content": answer}]


@pytest.mark.parametrize("prompt", ["explicit", "implicit"])
def test_conversational_rows_keep_their_messages_and_a_plain_rendering(tmp_path, prompt):
    if prompt == "explicit":
        rows = [
            {"prompt": chat(i, "")[:1], "chosen": chat(i, "kind")[1:], "rejected": chat(i, "rude")[1:]}
            for i in range(6)
        ]
    else:  # the whole conversations; TRL's extract_prompt finds their common start
        rows = [{"chosen": chat(i, "kind"), "rejected": chat(i, "rude")} for i in range(6)]
    path = write_jsonl(tmp_path / "chat.jsonl", rows)
    splits = load_splits(DataConfig(source="preference", files={"all": str(path)}, gt_size=2, w2s_size=2, test_size=2))
    row = splits["test"][0]
    assert row["prompt_messages"] == [{"role": "user", "content": row["prompt_messages"][0]["content"]}]
    assert row["chosen_messages"] == [{"role": "assistant", "content": "kind"}]
    assert row["prompt"] == f"\n\nHuman: {row['prompt_messages'][0]['content']}\n\nAssistant:"
    assert (row["chosen"], row["rejected"]) == (" kind", " rude")
    # In the training splits a swapped pair swaps its messages with its texts.
    for train in (splits["gt"], splits["w2s"]):
        for pair in train:
            assert pair["chosen"] == " " + pair["chosen_messages"][0]["content"]


def test_a_malformed_conversation_gets_one_clear_message(tmp_path):
    rows = [{"prompt": [{"role": "user", "text": "hi"}], "chosen": [{"role": "assistant", "content": "a"}],
             "rejected": [{"role": "assistant", "content": "b"}]}] * 4  # fmt: skip
    path = write_jsonl(tmp_path / "chat.jsonl", rows)
    message = f"{path}, row 0: not a preference pair: 'prompt' is not a list of messages with text 'role'"
    with pytest.raises(W2SInputError, match=message):
        load_splits(DataConfig(source="preference", files={"all": str(path)}, gt_size=1, w2s_size=1, test_size=1))


def test_a_source_with_a_fixed_format_refuses_conversational_rows(tmp_path):
    rows = [{"chosen": chat(i, "kind"), "rejected": chat(i, "rude")} for i in range(4)]
    write_jsonl(tmp_path / "train.jsonl.gz", rows, gz=True)
    write_jsonl(tmp_path / "test.jsonl.gz", rows, gz=True)
    with pytest.raises(
        W2SInputError, match="conversational rows .* are read by the 'preference' source, not by 'hh_rlhf'"
    ):
        load_splits(DataConfig(source="hh_rlhf", path=str(tmp_path), gt_size=1, w2s_size=1, test_size=1))


# ---------------------------------------------------------------- bad input
def test_malformed_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "gt.jsonl"
    path.write_text(json.dumps(pairs(1)[0]) + "\n" + json.dumps(pairs(1)[0]) + "\n{not json\n")
    with pytest.raises(W2SInputError) as error:
        load_splits(DataConfig(source="preference", files={"all": str(path)}, gt_size=1, w2s_size=1))
    assert str(path) in str(error.value) and "line 3 is not valid JSON" in str(error.value)


def test_missing_column_names_file_and_column(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "q", "chosen": "a", "reply": "b"}])
    with pytest.raises(W2SInputError) as error:
        load_splits(DataConfig(source="preference", path=str(path), gt_size=1, w2s_size=1))
    assert str(path) in str(error.value) and "missing column(s) ['rejected']" in str(error.value)


def test_empty_split_file(tmp_path):
    files = {s: str(write_jsonl(tmp_path / f"{s}.jsonl", pairs(4, s))) for s in ("gt", "w2s")}
    (tmp_path / "test.jsonl").write_text("\n")
    files["test"] = str(tmp_path / "test.jsonl")
    with pytest.raises(W2SInputError, match="holds no pairs \\(empty split\\)"):
        load_splits(DataConfig(source="preference", files=files))


def test_empty_split_after_cutting(tmp_path):
    path = write_jsonl(tmp_path / "all.jsonl", pairs(10))
    with pytest.raises(W2SInputError, match="the test split is empty"):
        load_splits(DataConfig(source="preference", files={"all": str(path)}, gt_size=5, w2s_size=5))


def test_overlapping_splits_are_refused(tmp_path):
    gt = write_jsonl(tmp_path / "gt.jsonl", pairs(5))
    w2s = write_jsonl(tmp_path / "w2s.jsonl", pairs(5, "w"))
    test = write_jsonl(tmp_path / "test.jsonl", pairs(3))  # the first 3 gt pairs again
    with pytest.raises(
        W2SInputError, match="the splits overlap: pair 'test-000000' of test is also 'gt-000000' of gt"
    ):
        load_splits(DataConfig(source="preference", files={"gt": str(gt), "w2s": str(w2s), "test": str(test)}))


def test_split_larger_than_source(tmp_path):
    path = write_jsonl(tmp_path / "all.jsonl", pairs(10))
    with pytest.raises(W2SInputError, match="the splits need 35 pairs but the source has only 10"):
        load_splits(DataConfig(source="preference", files={"all": str(path)}, gt_size=15, w2s_size=15, test_size=5))


def test_missing_local_path():
    with pytest.raises(W2SInputError, match="does not exist"):
        load_splits(DataConfig(source="preference", path="/no/such/dir"))


# ---------------------------------------------------------------- the synthetic source
def test_synthetic_splits_are_disjoint_deterministic_and_balanced():
    config = DataConfig(source="synthetic", gt_size=200, w2s_size=200, test_size=200, seed=3)
    first, again = load_splits(config), load_splits(config)
    for split in ("gt", "w2s", "test"):
        assert first[split]["id"] == again[split]["id"]
        assert first[split]["chosen"] == again[split]["chosen"]
    assert 60 < sum(first["gt"]["harmful"]) < 140
    assert set(first["test"]["kind"]) == {"surface", "context", "paraphrase"}


def test_training_pairs_are_stored_in_a_seeded_random_order_and_the_test_split_is_not():
    config = DataConfig(source="synthetic", gt_size=200, w2s_size=200, test_size=50)
    splits = load_splits(config)
    raw = DatasetDict(_synthetic(config))
    for split in ("gt", "w2s"):
        labels = splits[split]["gt_label"]
        assert 0.35 < sum(labels) / len(labels) < 0.65  # the order of a pair carries no ground truth
        for row, original in zip(splits[split], raw[split]):
            preferred = row["chosen"] if row["gt_label"] == 1.0 else row["rejected"]
            assert preferred == original["chosen"] and {row["chosen"], row["rejected"]} == {
                original["chosen"],
                original["rejected"],
            }
    assert "gt_label" not in splits["test"].column_names and splits["test"]["chosen"] == raw["test"]["chosen"]
    assert load_splits(config)["w2s"]["gt_label"] == splits["w2s"]["gt_label"]  # seeded
    other = load_splits(dataclasses.replace(config, seed=1))["w2s"]["gt_label"]
    assert other != splits["w2s"]["gt_label"]


def test_a_pairs_order_depends_on_its_id_not_on_its_neighbours():
    pairs = Dataset.from_dict(
        {"id": list("abcdefgh"), "prompt": [""] * 8, "chosen": list("ABCDEFGH"), "rejected": list("abcdefgh")}
    )
    whole = random_orientation(pairs, seed=3)
    part = random_orientation(pairs.select([5, 2, 7]), seed=3)
    assert list(part["gt_label"]) == [whole["gt_label"][i] for i in (5, 2, 7)]


def test_real_single_turn_helpfulness_pairs_for_the_implicit_conflict(shared_data):
    directory = shared_data / "hh-single-turn"
    splits = load_splits(
        DataConfig(source="hh_single_turn", path=str(directory), gt_size=50, w2s_size=50, test_size=50)
    )
    helpful = load_helpful_pairs(HelpfulDataConfig(source="hh_single_turn_helpful", path=str(directory)), 200, splits)
    assert helpful.num_rows == 200
    assert all(prompt.count("\n\nHuman:") == 1 for prompt in helpful["prompt"])
    harmless = {prompt for split in splits.values() for prompt in split["prompt"]}
    assert len(harmless & set(helpful["prompt"])) < 10  # a different set of requests from the harmless splits


def _damaged(tmp_path, kind):
    """A data file of 30 pairs, damaged as `kind` says; returns its path."""
    rows = pairs(30)
    if kind in ("null", "number", "hh null"):
        rows[5]["chosen"] = None if "null" in kind else 3
    text = "".join(json.dumps(row) + "\n" for row in rows).encode()
    if kind == "truncated gzip":
        path, data = tmp_path / "pairs.jsonl.gz", gzip.compress(text)
        data = data[: len(data) // 2]
    elif kind == "corrupt gzip":
        path, data = tmp_path / "pairs.jsonl.gz", bytearray(gzip.compress(text))
        data[20:22] = bytes([data[20] ^ 0xFF, data[21] ^ 0xFF])
    elif kind == "latin-1":
        path, lines = tmp_path / "pairs.jsonl", text.splitlines(keepends=True)
        data = b"".join(lines[:3]) + lines[3].replace(b"good", b"g\xf6od") + b"".join(lines[4:])
    elif kind == "truncated parquet":
        path = tmp_path / "pairs.parquet"
        Dataset.from_list(rows).to_parquet(str(path))
        data = path.read_bytes()[:-100]
    else:
        path, data = tmp_path / "pairs.jsonl", text
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("truncated gzip", "{path}: a truncated or corrupt gzip file (Compressed file ended before"),
        ("corrupt gzip", "{path}: a truncated or corrupt gzip file ("),
        ("latin-1", "{path}: line 4 is not UTF-8 text"),
        ("truncated parquet", "{path}: not a readable parquet file (Parquet magic bytes not found"),
        ("null", "{path}, row 5: 'chosen' must be text, got None"),
        ("number", "{path}, row 5: 'chosen' must be text, got 3"),
        ("hh null", "{path}, row 5: 'chosen' must be text, got None"),
    ],
)
def test_a_damaged_data_file_gets_one_line_naming_the_file_and_line_or_row(tmp_path, caplog, kind, message):
    path = _damaged(tmp_path, kind)
    source = "hh_rlhf" if kind.startswith("hh") else "preference"
    config = DataConfig(source=source, files={"all": str(path)}, gt_size=5, w2s_size=5, test_size=5)
    with pytest.raises(W2SInputError) as raised:
        load_splits(config)
    assert str(raised.value).startswith(message.format(path=path)), str(raised.value)
    assert "\n" not in str(raised.value)
    assert not [record for record in caplog.records if record.levelname == "ERROR"]  # no library error line first


def test_pairs_with_identical_responses_are_dropped_with_a_warning_or_refused(tmp_path, caplog):
    rows = pairs(30)
    for index in (3, 17):
        rows[index]["rejected"] = rows[index]["chosen"]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    config = DataConfig(source="preference", files={"all": str(path)}, gt_size=10, w2s_size=8, test_size=10)
    with caplog.at_level("WARNING", logger="w2s_align"):
        splits = load_splits(config)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("w2s_align")] == [
        f"warning: {path}: dropped 2 of 30 pairs with identical responses"
    ]
    assert all(row["chosen"] != row["rejected"] for split in splits.values() for row in split)
    with pytest.raises(W2SInputError, match="the source has only 28"):  # the 28 real pairs are all there is
        load_splits(dataclasses.replace(config, w2s_size=9))
    same = write_jsonl(tmp_path / "same.jsonl", [{**row, "rejected": row["chosen"]} for row in rows])
    with pytest.raises(W2SInputError, match=r"same.jsonl: every pair's two responses are identical"):
        load_splits(dataclasses.replace(config, files={"all": str(same)}))


def test_a_design_run_evaluates_on_a_validation_slice_of_the_ground_truth_split_and_never_reads_the_test_split():
    config = DataConfig(source="synthetic", gt_size=60, w2s_size=40, test_size=30, seed=3)
    reported = load_splits(config)
    design = load_splits(dataclasses.replace(config, evaluate_on="validation", validation_size=20))
    assert (design["gt"].num_rows, design["w2s"].num_rows, design["test"].num_rows) == (40, 40, 20)
    gt_ids = set(reported["gt"]["id"])
    assert set(design["test"]["id"]) <= gt_ids and set(design["gt"]["id"]) == gt_ids - set(design["test"]["id"])
    assert not set(design["test"]["id"]) & set(reported["test"]["id"])  # the test split is not used at all
    assert "gt_label" not in design["test"].column_names  # evaluated as a test split: `chosen` is the preferred one
    with pytest.raises(W2SInputError, match="validation_size: 60 pairs held out"):
        load_splits(dataclasses.replace(config, evaluate_on="validation", validation_size=60))


def test_conversational_pairs_saved_as_csv_are_refused_with_the_file_and_column(tmp_path):
    import pandas as pd

    messages = [{"role": "user", "content": "hi"}]
    rows = [{"prompt": str(messages), "chosen": "a", "rejected": "b"}] * 4  # what pandas writes for a list
    path = tmp_path / "chat.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    with pytest.raises(W2SInputError, match=r"chat.csv, row 0: 'prompt' holds a list of messages written as text"):
        load_splits(DataConfig(source="preference", files={"all": str(path)}, gt_size=1, w2s_size=1, test_size=1))


@pytest.mark.parametrize("layout", ["hub", "save_to_disk"])
def test_a_folder_in_the_hub_layout_or_saved_to_disk_is_read(tmp_path, layout):
    from datasets import Dataset, DatasetDict

    splits = DatasetDict({"train": Dataset.from_list(pairs(10)), "test": Dataset.from_list(pairs(3, "t"))})
    if layout == "hub":  # what push_to_hub writes, and the run's own labels/
        (tmp_path / "data").mkdir()
        for name, split in splits.items():
            split.to_parquet(tmp_path / "data" / f"{name}-00000-of-00001.parquet")
    else:
        splits.save_to_disk(str(tmp_path))
    loaded = load_splits(DataConfig(source="preference", path=str(tmp_path), gt_size=5))
    assert (loaded["gt"].num_rows, loaded["w2s"].num_rows, loaded["test"].num_rows) == (5, 5, 3)


def test_an_empty_folder_names_every_layout_it_reads(tmp_path):
    with pytest.raises(W2SInputError, match=r"\.parquet.*data/ \(the Hub's layout\), or a folder written by save_to"):
        load_splits(DataConfig(source="preference", path=str(tmp_path), gt_size=5))
