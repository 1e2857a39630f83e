"""The package's import graph: acyclic, the trainers independent of the recipe layer, and a light command line."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "w2s_align"
# The trainer layer: what an engineer imports into their own project, without recipes, plans or the pipeline.
TRAINER_LAYER = {
    "reward_trainer", "dpo_trainer", "losses", "collators", "sampling", "device", "conflicts", "sft", "errors",
    "validation", "evaluate_metrics",
}  # fmt: skip
RECIPE_LAYER = {"recipe", "plan", "pipeline", "tasks", "reward_task", "dpo_task", "training", "cli"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def _is_module(name: str) -> bool:
    path = PACKAGE / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Package modules that `path` imports when it is imported (not under TYPE_CHECKING, not inside functions)."""
    package = list(path.relative_to(PACKAGE).parent.parts)  # what a relative import is relative to
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1] if node.level > 1 else package
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names = [target] if node.module else [f"{target}.{alias.name}".lstrip(".") for alias in node.names]
            found.update(name for name in names if name and _is_module(name))
    return found


def _graph() -> dict[str, set[str]]:
    return {_module(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def test_the_import_graph_is_acyclic():
    graph = _graph()
    assert {"recipe", "cache", "tasks"} <= graph["plan"] and "deception" in " ".join(graph["analysis.report"])
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


def test_the_trainer_layer_imports_nothing_from_the_recipe_layer():
    graph = _graph()
    for module in TRAINER_LAYER:
        reached, stack = set(), [module]
        while stack:
            for target in graph[stack.pop()]:
                if target not in reached:
                    reached.add(target)
                    stack.append(target)
        assert not reached & RECIPE_LAYER, f"{module} reaches {sorted(reached & RECIPE_LAYER)}"


def test_the_command_line_starts_without_importing_the_trainers():
    code = "import sys, w2s_align.cli; print(sorted(m for m in ('trl', 'torch') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_package_exposes_the_trainers_the_pipeline_and_the_analyzer():
    import w2s_align
    from w2s_align.analysis.deception import DeceptionAnalyzer
    from w2s_align.pipeline import W2SPipeline
    from w2s_align.recipe import load_recipe
    from w2s_align.reward_trainer import W2SRewardTrainer

    assert w2s_align.W2SPipeline is W2SPipeline and w2s_align.load_recipe is load_recipe
    assert w2s_align.DeceptionAnalyzer is DeceptionAnalyzer and w2s_align.W2SRewardTrainer is W2SRewardTrainer
    assert sorted(w2s_align.__all__) == sorted(name for name in w2s_align.__all__ if hasattr(w2s_align, name))


def test_a_bad_recipe_or_data_file_stops_before_torch_is_imported(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: x\nladder: [{name: a, model: m}, {name: b, model: m}]\n")
    bad_data = tmp_path / "pairs.jsonl"
    bad_data.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{oops\n')
    code = (
        "import sys; from w2s_align.cli import main; "
        "codes = [main(['run', sys.argv[1], 'training.learning_rate=-1']), "
        "main(['run', sys.argv[1], 'data.source=preference', 'data.path=' + sys.argv[2]])]; "
        "print(codes, 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(recipe), str(bad_data)], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[2, 2] False"
    assert "'training.learning_rate' must be positive, got -1" in result.stderr
    assert f"{bad_data}: line 2 is not valid JSON" in result.stderr
