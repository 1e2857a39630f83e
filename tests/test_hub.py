"""Pushing a run to the Hub, offline: which repositories, what they hold, once; no token stops the run early."""

import re
from pathlib import Path

import pytest

from w2s_align.errors import W2SInputError
from w2s_align.pipeline import W2SPipeline
from w2s_align.recipe_yaml import recipe_from_dict


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
    assert len(label_files) == 2 and label_files[0] == "README.md"
    assert re.fullmatch(r"w2s-[0-9a-f]{12}-00000-of-00001\.parquet", label_files[1])
    card = next(Path(tiny_recipe["output_dir"]).glob("stages/train-tiny-l2.from-*/model/README.md")).read_text()
    assert 'model="me/tiny-tiny-l2.from-tiny-l1.xent.seed0"' in card  # the quick start loads the repository
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


class RefusingHub(FakeHub):
    def whoami(self):
        raise OSError("401 Client Error: Unauthorized for url: https://huggingface.co/api/whoami-v2")


@pytest.mark.parametrize(
    ("hub", "namespace", "message"),
    [
        (RefusingHub, None, "the Hub does not accept the token, or cannot be reached .401 Client Error"),
        (FakeHub, "someone-else", "the token .me. cannot write to 'someone-else'"),
    ],
)
def test_a_refused_token_or_namespace_stops_before_training(tiny_recipe, monkeypatch, hub, namespace, message):
    monkeypatch.setattr("huggingface_hub.HfApi", hub)
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    tiny_recipe["hub"] = {"push": ["students"], "namespace": namespace}
    with pytest.raises(W2SInputError, match=message):
        W2SPipeline(recipe_from_dict(tiny_recipe), log=lambda line: None).prepare()
    assert not list((Path(tiny_recipe["output_dir"]) / "stages").glob("train-*"))


def test_the_trainer_command_checks_the_token_before_training(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from w2s_align.cli import main

    monkeypatch.setattr("huggingface_hub.HfApi", RefusingHub)
    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    argv = ["reward", "--model_name_or_path", str(tiny_model_dir), "--dataset_name", "no-such-file.jsonl"]
    assert main([*argv, "--output_dir", str(tmp_path / "out"), "--push_to_hub"]) == 2
    assert "--push_to_hub: the Hub does not accept the token" in capsys.readouterr().err  # before the dataset loads


def test_model_cards_name_the_base_the_cut_and_the_method_that_was_used(tiny_recipe):
    tiny_recipe["methods"] = ["xent"]
    W2SPipeline(recipe_from_dict(tiny_recipe), log=lambda line: None).run()
    stages = Path(tiny_recipe["output_dir"]) / "stages"
    ceiling = next(stages.glob("train-tiny-l1-gt-seed0-*/model/README.md")).read_text()
    student = next(stages.glob("train-tiny-l2.from-*/model/README.md")).read_text()
    for card in (ceiling, student):
        assert "None" not in card
        assert f"the local model `{tiny_recipe['ladder'][0]['model']}`" in card
    assert "cut to its first 1 layer" in ceiling and "Trained on ground-truth labels" in ceiling
    assert "This model was trained with Reward." in ceiling and "Weak-to-Strong Generalization" not in ceiling
    assert "W2S Reward, a method introduced in [Weak-to-Strong Generalization" in student
    quick_start = next(stages.glob("train-tiny-l2.from-*/model"))
    assert f'model="{quick_start}"' in student
    assert f'AutoModelForSequenceClassification.from_pretrained("{quick_start}")' in student  # its config has the cut


def test_a_lora_adapter_of_a_cut_rung_loads_from_its_cards_instructions_to_the_runs_scores(tiny_recipe):
    import torch
    from peft import AutoPeftModelForSequenceClassification

    from w2s_align.models import load_reward_model

    tiny_recipe["methods"] = ["xent"]
    tiny_recipe["ladder"][0]["training"] = {"lora": {"r": 4, "alpha": 8, "target_modules": ["c_attn", "c_fc"]}}
    recipe = recipe_from_dict(tiny_recipe)
    W2SPipeline(recipe, log=lambda line: None).run()
    (model_dir,) = (Path(tiny_recipe["output_dir"]) / "stages").glob("train-tiny-l1-gt-seed0-*/model")
    card = (model_dir / "README.md").read_text()
    code = card.split("### Loading")[1].split("```python\n")[1].split("```")[0]
    assert "num_hidden_layers=1" in code and "AutoPeftModel` would build" in card
    namespace: dict = {}
    exec(code, namespace)  # the card's instructions, as a user runs them
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    with torch.no_grad():
        scores = namespace["model"].eval()(input_ids=ids).logits
        run = load_reward_model(recipe.ladder[0], str(model_dir)).eval()(input_ids=ids).logits  # as the run scored
        whole = AutoPeftModelForSequenceClassification.from_pretrained(str(model_dir)).eval()(input_ids=ids).logits
    assert torch.allclose(scores, run, atol=1e-5)
    assert not torch.allclose(whole, run, atol=1e-3)  # the base adapter_config.json names, whole: another model


# The hub module on its own: the targets of a plan and a push over stage directories written here (no training).


def _finished_stages(recipe):
    """The plan of `recipe` and its stage cache, with every model's `model/` folder (a card that names the folder)
    and every labeling's `labels/<key>/` folder written as a finished run leaves them."""
    from w2s_align.artifacts import RunDir
    from w2s_align.cache import StageCache
    from w2s_align.plan_builder import build_plan

    plan, cache = build_plan(recipe), StageCache(recipe.run_dir)
    for spec in plan.models:
        folder = cache.stage(spec).path("model")
        folder.mkdir(parents=True)
        (folder / "README.md").write_text(f'model="{folder}"\n')
    for spec in plan.labels:
        folder = RunDir(recipe.run_dir).labels(spec.key)
        folder.mkdir(parents=True)
        (folder / "README.md").write_text("labels\n")
    return plan, cache


@pytest.mark.parametrize(
    ("push", "kinds"),
    [
        (["ceilings"], {"model": {"ceiling"}}),
        (["students"], {"model": {"student"}}),
        (["labels"], {"dataset": {"labels"}}),
        (["ceilings", "students", "labels"], {"model": {"ceiling", "student"}, "dataset": {"labels"}}),
    ],
)
def test_hub_targets_are_what_hub_push_names_one_repository_each(tiny_recipe, push, kinds):
    from w2s_align.hub import hub_targets
    from w2s_align.plan_builder import build_plan

    tiny_recipe.update(methods=["xent", "logconf"], hub={"push": push, "namespace": "lab"})
    recipe = recipe_from_dict(tiny_recipe)
    plan = build_plan(recipe)
    targets = hub_targets(recipe.hub, recipe.name, plan)
    found: dict[str, set[str]] = {}
    for repo_type, spec, _, _ in targets:
        found.setdefault(repo_type, set()).add(getattr(spec, "role", "labels"))
    assert found == kinds
    repos = [repo for _, _, repo, _ in targets]
    assert len(set(repos)) == len(repos), "two targets share a repository"
    assert all(repo.startswith("lab/tiny-") for repo in repos)
    wanted = {"ceiling": "ceilings", "student": "students"}
    assert len([t for t in targets if t[0] == "model"]) == sum(
        wanted[s.role] in push for s in plan.models if s.role in wanted
    )
    assert {repo for _, _, repo, _ in hub_targets(recipe.hub, recipe.name, plan, namespace="me")} == {
        r.replace("lab/", "me/", 1) for r in repos
    }


def test_push_run_pushes_each_target_once_with_the_repository_in_its_card(tiny_recipe, monkeypatch):
    from w2s_align.hub import PUSHED, hub_targets, push_run

    hub = FakeHub()
    monkeypatch.setattr("huggingface_hub.HfApi", lambda: hub)
    tiny_recipe.update(methods=["xent"], hub={"push": ["students", "labels"], "private": False})
    recipe = recipe_from_dict(tiny_recipe)
    plan, cache = _finished_stages(recipe)
    logged: list[str] = []
    pushed = push_run(recipe.hub, recipe.name, plan, cache, logged.append)
    targets = hub_targets(recipe.hub, recipe.name, plan, "me")
    assert pushed == [repo for _, _, repo, _ in targets] and len(logged) == len(targets)
    assert [(repo, kind, private) for repo, kind, private in hub.repos] == [(t[2], t[0], False) for t in targets]
    for repo_type, spec, repo, _ in targets:
        if repo_type == "model":  # the card now loads the repository, not the local folder
            assert cache.stage(spec).path("model", "README.md").read_text() == f'model="{repo}"\n'
        assert cache.stage(spec).path(PUSHED).is_file()
    assert push_run(recipe.hub, recipe.name, plan, cache, logged.append) == [] and len(hub.uploads) == len(targets), (
        "pushed again"
    )


def test_push_run_pushes_nothing_without_hub_push(tiny_recipe, monkeypatch):
    from w2s_align.hub import push_run

    monkeypatch.setattr("huggingface_hub.HfApi", lambda: pytest.fail("the Hub was asked"))
    recipe = recipe_from_dict(tiny_recipe)
    plan, cache = _finished_stages(recipe)
    assert push_run(recipe.hub, recipe.name, plan, cache, print) == []


@pytest.mark.parametrize(
    ("token", "hub", "namespace", "message"),
    [
        (None, FakeHub, None, "--push_to_hub needs a Hugging Face token"),
        ("hf_x", RefusingHub, None, "--push_to_hub: the Hub does not accept the token"),
        ("hf_x", FakeHub, "other", "--push_to_hub: the token .me. cannot write to 'other'"),
    ],
)
def test_check_push_access_names_the_option_and_the_reason(monkeypatch, token, hub, namespace, message):
    from w2s_align.hub import check_push_access

    monkeypatch.setattr("huggingface_hub.get_token", lambda: token)
    monkeypatch.setattr("huggingface_hub.HfApi", hub)
    with pytest.raises(W2SInputError, match=message):
        check_push_access("--push_to_hub", namespace)


def test_check_push_access_accepts_the_users_organisations(monkeypatch):
    from w2s_align.hub import check_push_access

    class OrgHub(FakeHub):
        def whoami(self):
            return {"name": "me", "orgs": [{"name": "lab"}]}

    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_x")
    monkeypatch.setattr("huggingface_hub.HfApi", OrgHub)
    for namespace in (None, "me", "lab"):
        check_push_access("hub.push", namespace)
