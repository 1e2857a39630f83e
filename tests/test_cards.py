"""Papers, model cards, label datasets and Hub ids (`w2s_align.cards`)."""

from datasets import Dataset, load_dataset
from trl import DPOTrainer, RewardConfig

from w2s_align.cards import (
    BURNS_2023,
    YANG_2025,
    cite,
    hub_model_id,
    name_local_base,
    trl_base,
    w2s_section,
    write_label_dataset,
    write_model_card,
)
from w2s_align.dpo_trainer import W2SDPOTrainer
from w2s_align.recipe import RungConfig
from w2s_align.reward_trainer import W2SRewardConfig


def test_a_trainer_links_its_paper_and_cites_both():
    paper = cite(BURNS_2023, YANG_2025)
    assert paper["id"] == BURNS_2023["id"]
    assert BURNS_2023["citation"] in paper["citation"] and YANG_2025["citation"] in paper["citation"]


def test_the_trl_class_each_class_extends():
    assert trl_base(W2SRewardConfig) is RewardConfig and trl_base(W2SDPOTrainer) is DPOTrainer


def test_hub_ids_keep_to_the_characters_and_length_the_hub_allows():
    assert hub_model_id("me", "my recipe", "a.from-b.xent.seed0") == "me/my-recipe-a.from-b.xent.seed0"
    long = hub_model_id("me", "r" * 200, "k")
    assert len(long.split("/")[1]) == 96


def test_the_weak_to_strong_section_names_the_model_its_teachers_and_its_score(tmp_path):
    rung = RungConfig(name="strong", model="org/model", num_layers=2)
    model = {"label": "strong <- weak (xent)", "rung": rung, "seed": 1, "path": str(tmp_path)}
    model["auto_class"] = "AutoModelForSequenceClassification"
    scores = {"accuracy": 0.625, "num_test_pairs": 8}
    section = w2s_section("quickstart", model, ["weak.gt.seed1"], scores)
    assert "recipe `quickstart`" in section and "from `org/model`, cut to its first 2 layers" in section
    assert "Trained on the labels of: `weak.gt.seed1`" in section and "0.6250 on 8 pairs" in section
    assert f'model = AutoModelForSequenceClassification.from_pretrained("{tmp_path}")' in section  # a whole model
    (tmp_path / "adapter_config.json").write_text("{}")
    adapter = w2s_section("quickstart", model, [], scores)
    assert 'from_pretrained("org/model", num_labels=1, num_hidden_layers=2)' in adapter
    assert f'PeftModel.from_pretrained(base, "{tmp_path}")' in adapter
    ceiling = w2s_section("q", {**model, "rung": RungConfig(name="s", model="m", random_init=True)}, [], scores)
    assert "randomly initialised with the architecture of `m`" in ceiling and "ground-truth labels" in ceiling


def test_a_model_card_is_trls_card_with_a_local_base_named_and_the_section_after_it(tmp_path):
    trl_card = tmp_path / "trl.md"
    trl_card.write_text("# Model\n\nFine-tuned from [None](https://huggingface.co/None).\n")
    write_model_card(trl_card, tmp_path / "model", "\n## Weak-to-strong\n", "/models/local")
    text = (tmp_path / "model" / "README.md").read_text()
    assert "the local model `/models/local`" in text and "[None]" not in text
    assert text.index("# Model") < text.index("## Weak-to-strong")
    assert name_local_base("from [org/x](https://huggingface.co/org/x)", "org/x").endswith(
        "(https://huggingface.co/org/x)"
    )


def test_weak_labels_are_written_as_a_dataset_the_hub_library_loads(tmp_path):
    labels = Dataset.from_dict({"id": ["a", "b"], "soft_label": [0.9, 0.2], "labeler": ["w@s", "w@s"]})
    facts = {"teacher": "weak.gt.seed0", "split": "w2s", "stage hash": "abc123"}
    write_label_dataset(labels, "w2s", tmp_path / "labels", facts, "abc123")
    loaded = load_dataset(str(tmp_path / "labels"))
    assert list(loaded) == ["w2s"] and loaded["w2s"]["soft_label"] == [0.9, 0.2]
    card = (tmp_path / "labels" / "README.md").read_text()
    assert card.startswith("---\n") and "# Weak labels: weak.gt.seed0" in card and "`abc123`" in card
    # the card declares the license, the features and what each column holds
    assert "license: other" in card and "dtype: float64" in card and "num_examples: 2" in card
    assert "| `soft_label` | float64 | the labeler's probability that `chosen` is better" in card


def test_two_label_folders_of_one_name_load_as_themselves(tmp_path):
    # `datasets` caches a local folder by its name and its files' names: the stage hash in the file name keeps apart
    # two runs' folders of one teacher, and one folder relabelled
    for run, (soft, version) in {"a": ([0.9, 0.2], "aaa111"), "b": ([0.3, 0.6], "bbb222")}.items():
        labels = Dataset.from_dict({"id": ["x", "y"], "soft_label": soft})
        write_label_dataset(labels, "w2s", tmp_path / run / "weak.seed0", {"teacher": "weak.seed0"}, version)
        assert load_dataset(str(tmp_path / run / "weak.seed0"))["w2s"]["soft_label"] == soft
    relabelled = Dataset.from_dict({"id": ["x", "y"], "soft_label": [0.1, 0.1]})
    write_label_dataset(relabelled, "w2s", tmp_path / "a" / "weak.seed0", {"teacher": "weak.seed0"}, "ccc333")
    assert load_dataset(str(tmp_path / "a" / "weak.seed0"))["w2s"]["soft_label"] == [0.1, 0.1]
    assert [path.name for path in (tmp_path / "a" / "weak.seed0" / "data").iterdir()] == [
        "w2s-ccc333-00000-of-00001.parquet"
    ]
