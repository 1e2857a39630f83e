"""The plan: a recipe expanded into its stages (seeds, pairs, methods, chains, conflicts, filters), untrained."""

import json
from pathlib import Path

import pytest
from datasets import Dataset

from w2s_align.cache import StageCache
from w2s_align.errors import W2SInputError
from w2s_align.plan_builder import build_plan
from w2s_align.recipe_yaml import recipe_from_dict
from w2s_align.specs import CeilingSpec, LabelSpec, SFTSpec, StudentSpec


def sweep(**changes) -> dict:
    """A recipe with every axis of the expansion; models are never loaded by the plan."""
    raw = {
        "name": "sweep",
        "output_dir": "unused",
        "seeds": [0, 1],
        "data": {"source": "synthetic", "gt_size": 40, "w2s_size": 30, "test_size": 20},
        "ladder": [{"name": name, "model": "m"} for name in ("s", "m", "l")],
        "pairs": [
            {"weak": "s", "strong": "l", "label_filters": ["none", "confidence"]},
            {"weak": "s", "strong": "l", "via": ["m"]},
        ],
        "methods": ["xent", "logconf"],
        "conflicts": {"settings": ["none", "explicit", "implicit"], "alphas": [0.5, 1.0], "methods": ["xent"]},
    }
    raw.update(changes)
    return raw


def plan_of(raw):
    return build_plan(recipe_from_dict(raw))


def test_expansion_over_seeds_pairs_methods_conflicts_and_filters():
    plan = plan_of(sweep(controls=False))
    ceilings = [spec.key for spec in plan.models if isinstance(spec, CeilingSpec)]
    assert ceilings == [f"{rung}.gt.seed{seed}" for seed in (0, 1) for rung in ("s", "m", "l")]
    students = [spec for spec in plan.models if isinstance(spec, StudentSpec)]
    # per seed: pair 1: xent x (none, explicit-0.5, explicit-1, implicit-1) x 2 filters + logconf x 2 filters = 10;
    # pair 2: xent x 4 conflicts + logconf = 5
    assert len(students) == 2 * (10 + 5)
    seed0 = [spec.key for spec in students if spec.seed == 0]
    assert seed0[:4] == [
        "l.from-s.xent.seed0",
        "l.from-s.xent.confidence-filter.seed0",
        "l.from-s.xent.explicit-0.5.seed0",
        "l.from-s.xent.explicit-0.5.confidence-filter.seed0",
    ]
    assert "l.from-s.logconf.confidence-filter.seed0" in seed0
    assert not [key for key in seed0 if "logconf.explicit" in key or "logconf.implicit" in key]  # conflicts.methods
    assert "l.from-s-via-m.xent.implicit-1.seed0" in seed0 and "l.from-s-via-m.logconf.seed0" in seed0
    # every stage is planned once, though several students share a ceiling and its labels
    names = [step.stage_name for step in plan.steps]
    assert len(names) == len(set(names))
    # so a worker process finds the stage it is handed by its name
    assert all(plan.step(name) is step for name, step in zip(names, plan.steps))
    with pytest.raises(KeyError, match="0 stages"):
        plan.step("no-such-stage")
    labels = [step.key for step in plan.labels if step.teacher.seed == 0]
    assert labels == ["s.seed0", "m.from-s.xent.seed0", "m.from-s.logconf.seed0"]


def test_controls_of_conflicted_and_filtered_students():
    raw = sweep(seeds=[0], pairs=[{"weak": "s", "strong": "l", "label_filters": ["none", "confidence"]}])
    raw["conflicts"] = {"settings": ["none", "explicit", "implicit"], "alphas": [0.5], "ratios": [0.5]}
    raw["methods"] = ["xent"]
    plan = plan_of(raw)
    models = {spec.key: spec for spec in plan.models}
    explicit, implicit = models["l.from-s.xent.explicit-0.5.seed0"], models["l.from-s.xent.implicit-0.5.seed0"]
    # the explicit conflict is measured against the plain twin; the implicit one against a twin trained as many steps
    assert plan.baseline(explicit).key == "l.from-s.xent.seed0"
    padded = plan.baseline(implicit)
    assert padded.key == "l.from-s.xent.padded-0.5.seed0" and padded.control == "budget"
    # placebo: the twin with its batches in another order (same seed, same teacher's labels); random direction: the
    # same conflict toward coin tosses; imitation: the twin trained twice the epochs
    controls = plan.controls(explicit)
    placebo, twin = controls["placebo"], plan.baseline(explicit)
    assert placebo.key == "l.from-s.xent.placebo.seed0" and placebo.seed == explicit.seed == 0
    assert placebo.labels is explicit.labels and placebo.rung.training.trainer_kwargs["data_seed"] == 10_000
    assert placebo.rung.training.num_train_epochs == twin.rung.training.num_train_epochs
    assert controls["random-direction"].conflict.label == "explicit-0.5-random"
    imitation = controls["imitation"]
    assert imitation.key == "l.from-s.xent.imitation.seed0" and imitation.labels is explicit.labels
    assert imitation.rung.training.num_train_epochs == 2 * twin.rung.training.num_train_epochs
    assert "data_seed" not in imitation.rung.training.trainer_kwargs
    assert plan.controls(implicit)["placebo"].key == "l.from-s.xent.padded-0.5.placebo.seed0"
    assert plan.controls(implicit)["random-direction"].conflict.direction == "random"
    # each deception control saves its predictions on the training split, as do the students it controls
    assert all(plan.scores_training(spec) for spec in (explicit, twin, *controls.values()))
    without = plan_of({**raw, "conflicts": {"settings": ["none"]}})
    assert not [spec for spec in without.models if isinstance(spec, StudentSpec) and without.scores_training(spec)]
    # a confidence-filtered student gets a random subset of the same size, also under each conflict
    assert "l.from-s.xent.random-filter.seed0" in models and "l.from-s.xent.explicit-0.5.random-filter.seed0" in models
    filtered = models["l.from-s.xent.explicit-0.5.confidence-filter.seed0"]
    assert ("random subset", models["l.from-s.xent.explicit-0.5.random-filter.seed0"]) in plan.counterparts(filtered)
    assert set(plan.controls(filtered)) == {"placebo", "random-direction", "imitation"}
    # controls are not asked about themselves, and every control stage is planned once
    assert all(not plan.controls(spec) and not plan.counterparts(spec) for spec in controls.values())
    # controls have no controls of their own: no random subset of a placebo
    assert not [key for key in models if "random-filter.placebo" in key or "-random.random-filter" in key]
    names = [step.stage_name for step in plan.steps]
    assert len(names) == len(set(names))
    assert {spec.control for spec in models.values() if isinstance(spec, StudentSpec)} == {
        None, "placebo", "random-direction", "imitation", "budget", "random-subset"
    }  # fmt: skip
    # off: no control stage, and the implicit student's twin is the plain one
    plain = plan_of({**raw, "controls": False})
    assert not [spec for spec in plain.models if isinstance(spec, StudentSpec) and spec.control]
    assert plain.baseline(plain._models["l.from-s.xent.implicit-0.5.seed0"]).key == "l.from-s.xent.seed0"


def test_steps_run_after_every_stage_they_read():
    plan = plan_of(sweep())
    position = {step.stage_name: index for index, step in enumerate(plan.steps)}
    for index, step in enumerate(plan.steps):
        for source in step.upstream().values():
            if source.stage_name in position:  # data and helpful pairs are prepared before any step
                assert position[source.stage_name] < index, (step.stage_name, source.stage_name)


def test_bootstrapping_chain():
    plan = plan_of(sweep())
    student = next(s for s in plan.models if s.key == "l.from-s-via-m.xent.explicit-1.seed1")
    assert [teacher.key for teacher in student.chain] == ["s.gt.seed1", "m.from-s.xent.seed1"]
    middle = student.labels.teacher
    assert isinstance(middle, StudentSpec) and middle.strong == "m" and middle.conflict.kind == "none"
    assert middle.label_filter.kind == "none" and middle.method == "xent"
    assert middle.key not in [spec.key for spec in plan.models]  # an intermediate teacher, not a reported student
    assert student.labels.key == "m.from-s.xent.seed1" and student.labels.task == "reward"
    assert student.label == "l <- s -> m (xent, explicit-1)" and student.mitigation == "bootstrap via m"


@pytest.mark.parametrize("via", [["m"], ["m", "l"]])
def test_no_model_labels_pairs_it_trained_on(via):
    # Each teacher labels the split it did not train on: the ceiling (gt) labels w2s, an intermediate trained on w2s
    # labels gt, the next one w2s again; the student trains on the split its labels cover.
    ladder = [{"name": name, "model": "m"} for name in ("s", "m", "l", "xl")]
    plan = plan_of(sweep(ladder=ladder, pairs=[{"weak": "s", "strong": "xl", "via": via}], methods=["xent"]))
    for labels in plan.labels:
        assert labels.split != labels.teacher.split
    students = [spec for spec in plan.models if isinstance(spec, StudentSpec)]
    assert {student.split for student in students} == {"gt" if len(via) == 1 else "w2s"}
    assert [labels.split for labels in plan.labels if labels.teacher.seed == 0] == ["w2s", "gt", "w2s"][: len(via) + 1]


def test_each_conflicted_student_is_paired_with_its_no_conflict_twin():
    plan = plan_of(sweep())
    students = [spec for spec in plan.models if isinstance(spec, StudentSpec)]
    for spec in students:
        twin = plan.baseline(spec)
        if spec.conflict.kind == "none":
            assert twin is None
            continue
        assert twin.conflict.kind == "none"
        same = ("weak", "strong", "via", "method", "label_filter", "seed")
        assert [getattr(twin, name) for name in same] == [getattr(spec, name) for name in same]
    without_none = plan_of(sweep(conflicts={"settings": ["explicit"], "alphas": [0.5]}, controls=False))
    assert all(without_none.baseline(spec) is None for spec in without_none.models if isinstance(spec, StudentSpec))
    # with controls, the twin is trained whether or not the recipe asks for no-conflict students
    with_controls = plan_of(sweep(conflicts={"settings": ["explicit"], "alphas": [0.5]}))
    conflicted = [s for s in with_controls.models if isinstance(s, StudentSpec) and s.conflict.kind != "none"]
    assert conflicted and all(with_controls.baseline(spec) is not None for spec in conflicted)


def test_reward_models_supervise_policies_when_the_recipe_says_so():
    plan = plan_of(sweep(task="dpo", dpo={"supervisor": "reward"}, seeds=[0], conflicts={"settings": ["none"]}))
    labels = plan.labels[0]
    assert labels.key == "s-rm.seed0" and labels.task == "reward"
    assert labels.teacher.stage_name == "train-s-rm-gt-seed0"
    assert labels.teacher.label == "s (ground truth, reward model)"
    # the supervising reward model is reported too (PGR and the knowledge areas use it); ceilings are the policies
    assert "s-rm.gt.seed0" in [spec.key for spec in plan.models]
    assert plan.ceiling("s", 0).key == "s.gt.seed0"
    student = next(spec for spec in plan.models if isinstance(spec, StudentSpec) and not spec.via)
    assert student.chain[0].key == "s-rm.gt.seed0"
    assert plan.tasks == ["dpo", "reward"]
    # the intermediate rung of a chain is a policy: it trains and labels as one
    assert [step.key for step in plan.labels] == ["s-rm.seed0", "m.from-s.xent.seed0", "m.from-s.logconf.seed0"]
    assert {step.task for step in plan.labels[1:]} == {"dpo"}


def test_students_train_on_their_teachers_labels_and_implicit_ones_on_helpfulness_pairs_too():
    plan = plan_of(sweep(seeds=[0]))
    for spec in plan.models:
        if isinstance(spec, StudentSpec):
            upstream = spec.upstream()
            assert upstream["labels"] is spec.labels
            assert ("helpful" in upstream) == (spec.conflict.kind == "implicit")
    assert plan.helpful.ratio == 1.0 and plan_of(sweep(conflicts={"settings": ["none"]})).helpful is None


def hashes(raw) -> dict[str, str]:
    plan = plan_of(raw)
    cache = StageCache("unused")
    return {step.stage_name: cache.stage(step).hash for step in plan.steps}


def test_a_setting_changes_the_key_of_exactly_the_stages_it_determines():
    before = hashes(sweep(seeds=[0]))
    assert before == hashes(sweep(seeds=[0]))  # stable
    aux = hashes(sweep(seeds=[0], loss={"aux_coef": 0.9}))
    changed = {name for name in before if before[name] != aux[name]}
    assert changed and all(".logconf" in name for name in changed)  # xent students do not read aux_coef
    assert "train-l.from-s.logconf.seed0" in changed and "labels-m.from-s.logconf.seed0" in changed
    raw = sweep(seeds=[0])
    raw["ladder"][1]["training"] = {"learning_rate": 1e-3}  # the middle rung only
    rate = hashes(raw)
    changed = {name for name in before if before[name] != rate[name]}
    assert "train-m-gt-seed0" in changed and "train-s-gt-seed0" not in changed and "train-l-gt-seed0" not in changed
    assert "train-l.from-s-via-m.xent.seed0" in changed  # downstream of the middle rung's labels
    assert "train-l.from-s.xent.seed0" not in changed


def test_describe_lists_every_stage_its_status_and_pair_counts(tmp_path):
    raw = sweep(seeds=[0], output_dir=str(tmp_path / "run"))
    plan = plan_of(raw)
    cache = StageCache(tmp_path / "run")
    text = plan.describe(cache)
    assert text.splitlines()[0].startswith(f"sweep: {len(plan.steps) + 3} stages in {tmp_path / 'run'}")
    rows = len(plan.steps) + 3  # and the data, the helpfulness pairs and the report
    assert [line[:8] for line in text.splitlines()[1:]] == ["  to run"] * rows
    assert "gt 40, w2s 30, test 20 pairs" in text and "40 ground-truth pairs" in text
    assert "at most 30 weak labels of w2s (confidence filter: confidence >= 0.75)" in text
    # once the weak labels exist, the filter's count is exact
    labels = cache.stage(plan.labels[0])
    labels.dir.mkdir(parents=True)
    soft = [0.9, 0.8, 0.3, 0.2, 0.6] * 6
    Dataset.from_dict({"id": list(map(str, range(30))), "soft_label": soft}).to_parquet(labels.path("labels.parquet"))
    (labels.dir / "DONE.json").write_text(json.dumps({"num_pairs": 30}))
    text = plan.describe(cache)
    stage_line = next(line for line in text.splitlines() if labels.dir.name in line)
    assert stage_line.startswith("  cached")
    assert "18 of 30 weak labels of w2s (confidence filter: confidence >= 0.75) + 18 helpfulness pairs" in text


@pytest.mark.parametrize("task", ["reward", "dpo"])
def test_every_shipped_kind_of_task_plans_its_stages_with_its_settings(task):
    plan = plan_of(sweep(task=task, seeds=[0]))
    ceiling = plan.models[0]
    assert ceiling.task == task and ceiling.settings()["task"] == task
    assert ("dpo" in ceiling.settings()) == (task == "dpo")
    assert all(isinstance(step, CeilingSpec | LabelSpec | StudentSpec | SFTSpec) for step in plan.steps)
    # every policy starts from its SFT stage, a step of the plan before it (the reward models from the rung)
    models = [step for step in plan.steps if isinstance(step, CeilingSpec | StudentSpec)]
    assert all(
        (model.sft in plan.steps[: plan.steps.index(model)]) if task == "dpo" else model.sft is None
        for model in models
    )


def test_a_pair_can_name_its_own_methods():
    raw = sweep(seeds=[0], conflicts={"settings": ["none"]})
    raw["pairs"] = [{"weak": "s", "strong": "l", "methods": ["window", "kl"]}, {"weak": "m", "strong": "l"}]
    plan = plan_of(raw)
    students = [spec.key for spec in plan.models if isinstance(spec, StudentSpec)]
    assert students == [
        "l.from-s.window.seed0", "l.from-s.kl.seed0", "l.from-m.xent.seed0", "l.from-m.logconf.seed0"
    ]  # fmt: skip
    assert "4 method(s)" in plan.describe(StageCache("unused")).splitlines()[0]
    with pytest.raises(Exception, match="'pairs.0.methods' must name at least one method"):
        plan_of({**raw, "pairs": [{"weak": "s", "strong": "l", "methods": []}]})


def test_a_pair_can_name_some_of_the_conflict_settings():
    raw = sweep(seeds=[0], methods=["xent"], conflicts={"settings": ["none", "explicit", "implicit"]}, controls=False)
    raw["pairs"] = [{"weak": "s", "strong": "l", "conflicts": ["none", "explicit"]}, {"weak": "m", "strong": "l"}]
    plan = plan_of(raw)
    students = [spec.key for spec in plan.models if isinstance(spec, StudentSpec)]
    assert students == [
        "l.from-s.xent.seed0", "l.from-s.xent.explicit-0.5.seed0",
        "l.from-m.xent.seed0", "l.from-m.xent.explicit-0.5.seed0", "l.from-m.xent.implicit-1.seed0",
    ]  # fmt: skip
    for conflicts in ([], ["implicit"]):
        raw["conflicts"] = {"settings": ["none", "explicit"]} if conflicts else raw["conflicts"]
        raw["pairs"][0]["conflicts"] = conflicts
        with pytest.raises(Exception, match="'pairs.0.conflicts' must name some of conflicts.settings"):
            plan_of(raw)


def test_each_student_is_compared_with_its_naive_unmitigated_and_single_teacher_counterparts():
    plan = plan_of(sweep(seeds=[0]))
    students = {spec.key: spec for spec in plan.models if isinstance(spec, StudentSpec)}
    pairs = {key: [(factor, other.key) for factor, other in plan.counterparts(spec)] for key, spec in students.items()}
    assert pairs["l.from-s.logconf.confidence-filter.seed0"] == [
        ("method", "l.from-s.xent.confidence-filter.seed0"), ("mitigation", "l.from-s.logconf.seed0"),
        ("random subset", "l.from-s.logconf.random-filter.seed0"),
    ]  # fmt: skip
    assert pairs["l.from-s-via-m.xent.explicit-0.5.seed0"] == [("mitigation", "l.from-s.xent.explicit-0.5.seed0")]
    assert pairs["l.from-s.xent.explicit-0.5.seed0"] == []  # the conflict's own comparison is its targeting
    ensembled = plan_of(
        sweep(seeds=[0], pairs=[{"weak": "s", "strong": "l"}, {"weak": "s", "strong": "l", "ensemble": {"seeds": 2}}])
    )
    students = {spec.key: spec for spec in ensembled.models if isinstance(spec, StudentSpec)}
    assert [(factor, other.key) for factor, other in ensembled.counterparts(students["l.from-sx2.logconf.seed0"])] == [
        ("method", "l.from-sx2.xent.seed0"), ("ensemble", "l.from-s.logconf.seed0")
    ]  # fmt: skip


def test_checks_are_judged_as_the_conflicted_student_and_the_deceiver_reads_the_strong_ceilings_labels():
    raw = sweep(seeds=[0], pairs=[{"weak": "s", "strong": "l"}, {"weak": "s", "strong": "l", "via": ["m"]}])
    raw["conflicts"] = {"settings": ["none", "explicit"], "alphas": [0.5], "checks": ["longer", "deceiver-0.5"]}
    raw["methods"] = ["xent"]
    plan = plan_of(raw)
    models = {spec.key: spec for spec in plan.models}
    explicit = models["l.from-s.xent.explicit-0.5.seed0"]
    checks = plan.checks(explicit)
    assert set(checks) == {"longer", "deceiver-0.5"}
    longer, deceiver = checks["longer"], checks["deceiver-0.5"]
    twin = plan.baseline(explicit)
    assert longer.key == "l.from-s.xent.check-longer.seed0" and longer.control == "check"
    assert longer.rung.training.num_train_epochs == 2 * twin.rung.training.num_train_epochs
    # batches in a third order: not the imitation control's, not the placebo's
    assert longer.rung.training.trainer_kwargs["data_seed"] == 20_000
    assert deceiver.labels is twin.labels and deceiver.oracle.teacher.key == "l.gt.seed0"
    assert deceiver.oracle.split == deceiver.split == "w2s"
    assert "check deceiver-0.5: deceptive" in deceiver.label
    assert all(plan.scores_training(spec) for spec in checks.values())
    # checks are not asked about, have no controls; a bootstrapped student trains on the ground-truth split, which
    # the strong ceiling trained on: it gets no check
    assert not plan.checks(longer) and not plan.controls(longer) and not plan.counterparts(longer)
    assert not plan.checks(models["l.from-s-via-m.xent.explicit-0.5.seed0"])
    # adding checks changes no other stage
    without = plan_of({**raw, "conflicts": {**raw["conflicts"], "checks": []}})
    cache = StageCache(Path("unused"))
    hashes = {step.stage_name: cache.stage(step).hash for step in without.steps}
    assert all(cache.stage(step).hash == hashes[step.stage_name] for step in plan.steps if step.stage_name in hashes)


def test_two_different_stages_never_share_a_name():
    # a rung named 'w-via-m' would make the direct student of 'w-via-m' the bootstrapped student of w via m; the recipe
    # refuses the name (tests/test_names.py), and the plan, the last line, refuses the collision itself
    raw = sweep(seeds=[0], methods=["xent"], controls=False)
    raw["ladder"] = [{"name": name, "model": "m"} for name in ("w", "m", "s", "w2")]
    raw["pairs"] = [{"weak": "w", "strong": "s", "via": ["m"]}, {"weak": "w2", "strong": "s"}]
    raw["conflicts"] = {"settings": ["none"]}
    recipe = recipe_from_dict(raw)
    recipe.ladder[3].name = recipe.pairs[1].weak = "w-via-m"
    with pytest.raises(W2SInputError, match="two different stages would share the name 'train-s.from-w-via-m.xent"):
        build_plan(recipe)
    # a stage several students share is planned once, without complaint
    assert plan_of(sweep(seeds=[0]))


def test_a_control_added_to_the_registry_is_planned_listed_and_labelled(monkeypatch, tmp_path):
    """Adding a control touches `controls.py` alone (docs/architecture.md): one record, and the plan derives it for
    every student it applies to, `w2s-align plan` lists it, and its label names its change."""
    import dataclasses

    from w2s_align.controls import CONTROLS, Control, with_training

    def half(student, twin):
        rung = with_training(twin.rung, num_train_epochs=twin.rung.training.num_train_epochs / 2)
        return dataclasses.replace(twin, rung=rung, variant="half-epochs")

    monkeypatch.setitem(
        CONTROLS, "half-epochs", Control("half-epochs", "conflict", half, "half", what="half the epochs")
    )
    raw = sweep(seeds=[0], methods=["xent"], pairs=[{"weak": "s", "strong": "l"}], output_dir=str(tmp_path))
    raw["conflicts"] = {"settings": ["none", "explicit"], "alphas": [0.5]}
    plan = plan_of(raw)
    models = {spec.key: spec for spec in plan.models}
    control = models["l.from-s.xent.half-epochs.seed0"]
    twin = models["l.from-s.xent.seed0"]
    assert control.control == "half-epochs" and control.labels is twin.labels
    assert control.rung.training.num_train_epochs == twin.rung.training.num_train_epochs / 2
    assert control.label == "l <- s (xent, half-epochs: half the epochs)"
    assert control.stage_name in plan.describe(StageCache(tmp_path))
    assert "half-epochs" not in plan.controls(
        models["l.from-s.xent.explicit-0.5.seed0"]
    )  # the verdicts do not read it
    assert not plan.controls(control) and not plan.counterparts(control)
    assert len([key for key in models if "half-epochs" in key]) == 1  # the twin's; the student's controls have none
