"""Pushing a run to the Hub, offline: which repositories, what they hold, once; no token stops the run early."""

from pathlib import Path

import pytest

from w2s_align.errors import W2SInputError
from w2s_align.pipeline import W2SPipeline
from w2s_align.recipe import recipe_from_dict


class FakeHub:
    """Records what `HfApi` is asked to do."""

    def __init__(self):
        self.repos, self.uploads = [], []

    def whoami(self):
        return {"name": "me"}

    def create_repo(self, repo_id, repo_type=None, private=None, exist_ok=False):
        self.repos.append((repo_id, repo_type, private))

    def upload_folder(self, repo_id, repo_type, folder_path, commit_message):
        self.uploads.append((repo_id, sorted(path.name for path in Path(folder_path).rglob("*") if path.is_file())))
        return "commit"


@pytest.mark.slow
def test_students_and_labels_are_pushed_once_with_their_cards(tiny_recipe, monkeypatch):
    hub = FakeHub()
    monkeypatch.setattr("huggingface_hub.HfApi", lambda: hub)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    tiny_recipe.update(methods=["xent"], hub={"push": ["students", "labels"]})
    W2SPipeline(recipe_from_dict(tiny_recipe), log=lambda line: None).run()
    assert hub.repos == [
        ("me/tiny-tiny-l2.from-tiny-l1.xent.seed0", "model", True),
        ("me/tiny-labels-tiny-l1.seed0", "dataset", True),
    ]
    (model_files, label_files) = (files for _, files in hub.uploads)
    assert {"README.md", "model.safetensors", "config.json"} <= set(model_files)
    assert label_files == ["README.md", "w2s-00000-of-00001.parquet"]
    W2SPipeline(recipe_from_dict(tiny_recipe), log=lambda line: None).run()
    assert len(hub.uploads) == 2, "a rerun pushes nothing again"


def test_pushing_without_a_token_stops_before_training(tiny_recipe, monkeypatch):
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    tiny_recipe["hub"] = {"push": ["students"]}
    with pytest.raises(W2SInputError, match="hub.push needs a Hugging Face token"):
        W2SPipeline(recipe_from_dict(tiny_recipe), log=lambda line: None).prepare()
    assert not list((Path(tiny_recipe["output_dir"]) / "stages").glob("train-*"))


def test_trainer_kwargs_may_not_push(tiny_recipe):
    tiny_recipe["training"]["trainer_kwargs"] = {"push_to_hub": True}
    with pytest.raises(W2SInputError, match="training.trainer_kwargs.push_to_hub is set by hub.push"):
        W2SPipeline(recipe_from_dict(tiny_recipe), log=lambda line: None).prepare()
