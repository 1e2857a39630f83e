"""The stage runner on its own (issue 41): each kind of step runs through its own method, the plan it is given is the
one it runs, and what outlives a stage is frozen out of later collections only in a process the runner owns."""

from __future__ import annotations

import gc

from w2s_align.plan_builder import build_plan
from w2s_align.recipe_yaml import recipe_from_dict
from w2s_align.specs import CeilingSpec, EnsembleSpec, FeatureSpec, GenerativeSpec, LabelSpec, SFTSpec, StudentSpec
from w2s_align.stage_runner import StageRunner

METHODS = {
    CeilingSpec: "train", StudentSpec: "train", LabelSpec: "label", SFTSpec: "sft", FeatureSpec: "features",
    EnsembleSpec: "ensemble", GenerativeSpec: "generative",
}  # fmt: skip


class Recorder:
    """A runner that records which of its methods each step called."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda spec, stage: self.calls.append((name, spec, stage))


def test_each_kind_of_step_runs_through_the_runners_method_for_it(tiny_recipe):
    tiny_recipe["pairs"] = [
        {"weak": "tiny-l1", "strong": "tiny-l2", "label_filters": ["none", "knn-relabel"]},  # a probe reads features
        {"weak": "tiny-l1", "strong": "tiny-l2", "ensemble": {"seeds": 2}},
    ]
    tiny_recipe["task"] = "dpo"  # policies start from SFT
    tiny_recipe["dpo"] = {"supervisor": "reward"}  # an ensemble combines reward models' labels
    tiny_recipe["ladder"][1]["generative"] = {"epochs": 1}  # and from language modeling first
    plan = build_plan(recipe_from_dict(tiny_recipe))
    assert {type(step) for step in plan.steps} == set(METHODS)
    runner = Recorder()
    for step in plan.steps:
        step.run(runner, "stage")
    assert [(name, type(spec)) for name, spec, _ in runner.calls] == [(METHODS[type(s)], type(s)) for s in plan.steps]
    assert all(spec is step for (_, spec, _), step in zip(runner.calls, plan.steps))
    # each trains or scores a model (a Ray task of it asks for a GPU), but the ensemble, which combines labels
    assert {step for step in plan.steps if not step.uses_models} == {s for s in plan.steps if type(s) is EnsembleSpec}


def test_the_runner_runs_the_plan_it_is_given_and_freezes_only_a_process_it_owns(tiny_recipe):
    recipe = recipe_from_dict(tiny_recipe)
    plan = build_plan(recipe)
    shared = StageRunner(recipe, log=lambda line: None, plan=plan)
    assert shared.plan is plan and shared.cache.run_dir == recipe.run_dir
    frozen = gc.get_freeze_count()
    _ = [object() for _ in range(1000)]  # objects a stage would leave behind
    shared.release()
    assert gc.get_freeze_count() == frozen  # the test session is not the runner's to freeze
    owner = StageRunner(recipe, log=lambda line: None, owns_process=True)
    assert owner.plan is not plan and [s.stage_name for s in owner.plan.steps] == [s.stage_name for s in plan.steps]
    survivors = [object() for _ in range(1000)]
    owner.release()
    assert gc.get_freeze_count() >= frozen + len(survivors)
    gc.unfreeze()  # leave the session's collector as it was (conftest froze what collection imported)
    gc.freeze()
