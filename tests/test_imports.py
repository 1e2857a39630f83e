"""The package's import graph: acyclic, the trainers independent of the recipe layer, and a light command line."""

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "w2s_align"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"
# What the trainer layer may never reach: the recipe (schema and reading), the plan, the tasks and the pipeline.
RECIPE_LAYER = {
    "recipe", "recipe_yaml", "plan", "pipeline", "stage_runner", "tasks", "task_interface", "reward_task", "dpo_task",
    "cli",
}  # fmt: skip


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def _is_module(name: str) -> bool:
    path = PACKAGE / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


# A module named in a string (`"w2s_align.reward_task:RewardTask"` in a registry, `"w2s_align.reward_trainer"` in a
# table) is imported by name: an import of that module too.
NAMED_MODULE = re.compile(r"^w2s_align((?:\.\w+)+)(?::\w+)?$")
# `evaluate.load` of a module of `evaluate_metrics` by its directory (`metric_path("pgr")`): an import of its script.
METRIC_LOADERS = ("load_metric", "metric_path")


def _imports(path: Path) -> set[str]:
    """Package modules that `path` imports anywhere: at module level, inside functions, under TYPE_CHECKING, by a
    name in a string (registries), and `evaluate` modules loaded by their path."""
    package = list(path.relative_to(PACKAGE).parent.parts)  # what a relative import is relative to
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in METRIC_LOADERS and node.args:
            if isinstance(node.args[0], ast.Constant):
                found.add(f"evaluate_metrics.{node.args[0].value}.{node.args[0].value}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAMED_MODULE.match(node.value):
            name = NAMED_MODULE.match(node.value).group(1).lstrip(".")
            if _is_module(name):
                found.add(name)
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1] if node.level > 1 else package
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "w2s_align":
            target = node.module.removeprefix("w2s_align").lstrip(".")
        elif isinstance(node, ast.Import):
            names = [alias.name.removeprefix("w2s_align.") for alias in node.names if alias.name.startswith("w2s_")]
            found.update(name for name in names if _is_module(name))
            continue
        else:
            continue
        names = [target, *(f"{target}.{alias.name}".lstrip(".") for alias in node.names)]
        found.update(name for name in names if name and _is_module(name))
    return found


def _graph() -> dict[str, set[str]]:
    return {_module(path): _imports(path) - {_module(path)} for path in PACKAGE.rglob("*.py")}


def _layers() -> list[set[str]]:
    """The modules of each layer of docs/architecture.md's table, from the bottom up."""
    table = ARCHITECTURE.read_text().split("| layer | modules | what |")[1].split("\n\n")[0]
    rows = [line.split(" | ")[1] for line in table.strip().splitlines()[1:]]
    return [set(re.findall(r"`([\w.]+)`", row)) for row in rows]


def _layer_of(module: str, layers: list[set[str]]) -> int:
    """A module's layer: that of the longest listed name it is, or is inside (`evaluate_metrics.pgr.pgr`)."""
    listed = [(len(name), index) for index, names in enumerate(layers) for name in names]
    matches = [
        (length, index)
        for length, index in listed
        for name in layers[index]
        if len(name) == length and (module == name or module.startswith(name + "."))
    ]
    assert matches, f"{module} is in no layer of docs/architecture.md"
    return max(matches)[1]


def test_the_import_graph_counting_every_import_is_acyclic():
    graph = _graph()
    # Imports inside functions and under TYPE_CHECKING are read too: the cache imports the distributed helpers in a
    # function, the probes name the recipe schema.
    assert "distributed" in graph["cache"] and "recipe" in graph["probes"]
    assert {"recipe", "tasks", "plan", "specs"} <= graph["plan_builder"] and "cache" in graph["specs"]
    assert "analysis.deception" in graph["analysis.results"]
    # modules imported by name: the task registry's, the reward and dpo commands' trainers, evaluate's scripts
    assert {"reward_task", "dpo_task"} <= graph["tasks"] and "reward_trainer" in graph["trainer_cli"]
    assert "evaluate_metrics.pairwise_accuracy.pairwise_accuracy" in graph["evaluate_metrics"]
    done, active = set(), []

    def visit(module: str) -> None:
        if module in active:
            raise AssertionError("import cycle: " + " -> ".join([*active[active.index(module) :], module]))
        if module in done:
            return
        active.append(module)
        for target in graph.get(module, ()):
            visit(target)
        active.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_every_module_is_in_one_layer_and_imports_nothing_above_it():
    layers = _layers()
    names = [name for layer in layers for name in layer]
    assert len(layers) == 5 and len(names) == len(set(names)), "a module is listed twice in docs/architecture.md"
    graph = _graph()
    assert not {name for name in names if name not in graph}, "docs/architecture.md lists modules that do not exist"
    upward = [
        f"{module} ({_layer_of(module, layers)}) imports {target} ({_layer_of(target, layers)})"
        for module, targets in graph.items()
        for target in targets
        if _layer_of(target, layers) > _layer_of(module, layers)
    ]
    assert not upward, "imports upward: " + "; ".join(sorted(upward))


def test_the_trainer_layer_imports_nothing_from_the_recipe_layer():
    graph = _graph()
    for module in _layers()[1]:
        reached, stack = set(), [module]
        while stack:
            for target in graph[stack.pop()]:
                if target not in reached:
                    reached.add(target)
                    stack.append(target)
        assert not reached & RECIPE_LAYER, f"{module} reaches {sorted(reached & RECIPE_LAYER)}"


def test_planning_a_recipe_imports_neither_torch_nor_trl():
    code = (
        "import sys, w2s_align.plan; light = [m for m in ('trl', 'torch', 'transformers') if m in sys.modules]; "
        "from w2s_align.cli import main; code = main(['plan', 'recipes/deception/minilm_deception_sweep.yaml']); "
        "print(light, code, [m for m in ('trl', 'torch', 'transformers') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    assert "318 stages in runs/minilm_deception_sweep" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[] 0 []"


def test_the_command_line_starts_without_importing_the_trainers():
    code = "import sys, w2s_align.cli; print(sorted(m for m in ('trl', 'torch') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_package_exposes_the_trainers_the_pipeline_and_the_analyzer():
    import w2s_align
    from w2s_align.analysis.deception import DeceptionAnalyzer
    from w2s_align.pipeline import W2SPipeline
    from w2s_align.recipe_yaml import load_recipe
    from w2s_align.reward_trainer import W2SRewardTrainer

    assert w2s_align.W2SPipeline is W2SPipeline and w2s_align.load_recipe is load_recipe
    assert w2s_align.DeceptionAnalyzer is DeceptionAnalyzer and w2s_align.W2SRewardTrainer is W2SRewardTrainer
    assert sorted(w2s_align.__all__) == sorted(name for name in w2s_align.__all__ if hasattr(w2s_align, name))


def test_a_bad_recipe_data_file_data_row_or_output_dir_stops_before_torch_is_imported(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: x\noutput_dir: {tmp_path / 'run'}\nladder: [{{name: a, model: m}}, {{name: b, model: m}}]\n"
    )
    bad_data = tmp_path / "pairs.jsonl"
    bad_data.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{oops\n')
    bad_row = tmp_path / "rows.jsonl"
    bad_row.write_text(
        "".join(f'{{"prompt": "q{i}", "chosen": "{"" if i == 5 else "a"}", "rejected": "b"}}\n' for i in range(9))
    )
    code = (
        "import sys; from w2s_align.cli import main; "
        "codes = [main(['run', sys.argv[1], 'training.learning_rate=-1']), "
        "main(['run', sys.argv[1], 'data.source=preference', 'data.path=' + sys.argv[2]]), "
        "main(['run', sys.argv[1], 'data.source=preference', 'data.path=' + sys.argv[3]]), "
        "main(['run', sys.argv[1], 'output_dir=' + sys.argv[2] + '/run'])]; "
        "print(codes, 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(recipe), str(bad_data), str(bad_row)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[2, 2, 2, 2] False", result.stderr
    assert "'training.learning_rate' must be positive, got -1" in result.stderr
    assert f"{bad_data}: line 2 is not valid JSON" in result.stderr
    assert f"{bad_row}, row 5: not a preference pair: 'chosen' is empty" in result.stderr
    assert f"{bad_data}/run: cannot be made a directory ({bad_data} is a file)" in result.stderr
    assert not (tmp_path / "run").exists()


def test_no_function_of_the_package_is_over_80_lines():
    """Long functions were split by what they do (issue 41); a new one over 80 lines is split too."""
    long = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80
    ]
    assert not long, "functions over 80 lines: " + "; ".join(long)


# What expands or runs a whole experiment is given the whole recipe; what it calls is given the values it reads.
TAKES_THE_RECIPE = {
    "recipe_yaml.py", "plan_builder.py", "plan.py", "preflight.py", "task_interface.py", "reward_task.py",
    "dpo_task.py", "classify_task.py", "tasks.py", "stage_runner.py", "pipeline.py", "parallel_stages.py",
    "ray_stages.py",
}  # fmt: skip


def test_only_the_modules_that_run_a_whole_experiment_take_the_whole_recipe():
    """Issue 41: `distributed.process_group_timeout(recipe)` and the like now take the values they read."""
    found = sorted(
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
        for path in PACKAGE.rglob("*.py")
        if path.name not in TAKES_THE_RECIPE
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        if arg.arg == "recipe" or (arg.annotation is not None and ast.unparse(arg.annotation).strip("'\"") == "Recipe")
    )
    assert not found, "functions given the whole recipe: " + "; ".join(found)
