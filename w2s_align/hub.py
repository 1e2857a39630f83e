"""Pushing a finished run's models and weak labels to the Hugging Face Hub (`hub.push` in the recipe).

Each pushed model is a stage's `model/` directory (weights or LoRA adapters, tokenizer, model card) in the repository
`<namespace>/<recipe>-<model key>`; each teacher's weak labels are the dataset `<namespace>/<recipe>-labels-<key>`
(the `labels/<key>/` directory of the run, with its card). A pushed stage is recorded in its directory
(`hub.json`), so a rerun does not push it again.

Example:

```python
>>> from w2s_align.recipe_yaml import load_recipe
>>> from w2s_align.plan_builder import build_plan
>>> from w2s_align.hub import hub_targets
>>> recipe = load_recipe("recipes/quickstart.yaml", ["hub.push=[students]", "hub.namespace=me"])
>>> [repo for _, _, repo, _ in hub_targets(recipe.hub, recipe.name, build_plan(recipe))][0]
'me/quickstart-minilm-l3.from-minilm-l1.xent.seed0'
```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .artifacts import RunDir, atomic_write_json, atomic_write_text
from .cards import hub_model_id
from .errors import W2SInputError, first_line

if TYPE_CHECKING:
    from .cache import StageCache
    from .plan import Plan
    from .recipe import HubConfig

PUSHED = "hub.json"


def check_hub_access(hub: HubConfig) -> None:
    """Stop before any training when a recipe's `hub` section pushes to the Hub and could not: no token, a token the
    Hub refuses, no Hub to reach, or a `hub.namespace` the token cannot write to."""
    if hub.push:
        check_push_access("hub.push", hub.namespace)


def check_push_access(what: str, namespace: str | None = None) -> None:
    """Ask the Hub who the token is (`whoami`) and whether it may write to `namespace` (the user or one of their
    organisations; any when None); raise `W2SInputError` naming `what` (the option that pushes) when not."""
    from huggingface_hub import HfApi, get_token

    if get_token() is None:
        raise W2SInputError(f"{what} needs a Hugging Face token: run `hf auth login` or set HF_TOKEN")
    try:
        identity = HfApi().whoami()
    except Exception as error:  # huggingface_hub raises HTTP, connection and offline-mode errors alike
        reason = first_line(error)
        raise W2SInputError(f"{what}: the Hub does not accept the token, or cannot be reached ({reason})") from None
    writable = {identity["name"], *(org["name"] for org in identity.get("orgs", []))}
    if namespace is not None and namespace not in writable:
        raise W2SInputError(f"{what}: the token ({identity['name']}) cannot write to {namespace!r}")


def hub_targets(
    hub: HubConfig, recipe_name: str, plan: Plan, namespace: str | None = None
) -> list[tuple[str, object, str, str]]:
    """What a recipe's `hub.push` pushes: `(repo_type, spec, repo_id, what)` for every ceiling, student and label set
    it names, in the repositories `<namespace>/<recipe_name>-...` (`namespace`: else `hub.namespace`)."""
    namespace = namespace or hub.namespace
    targets = []
    for spec in plan.models:
        role = {"ceiling": "ceilings", "student": "students"}.get(spec.role)  # an ensemble has no weights of its own
        if role in hub.push:
            targets.append(("model", spec, hub_model_id(namespace, recipe_name, spec.key), spec.label))
    if "labels" in hub.push:
        for spec in plan.labels:
            repo = hub_model_id(namespace, recipe_name, f"labels-{spec.key}")
            targets.append(("dataset", spec, repo, f"weak labels of {spec.key}"))
    return targets


def push_run(hub: HubConfig, recipe_name: str, plan: Plan, cache: StageCache, log: Callable[[str], None]) -> list[str]:
    """Push what a recipe's `hub.push` names from the run of `cache` (main process); return the repositories pushed
    this time."""
    if not hub.push:
        return []
    from huggingface_hub import HfApi

    api = HfApi()
    namespace = hub.namespace or api.whoami()["name"]
    pushed = []
    for repo_type, spec, repo_id, what in hub_targets(hub, recipe_name, plan, namespace):
        stage = cache.stage(spec)
        if stage.path(PUSHED).is_file():
            continue
        folder = stage.path("model") if repo_type == "model" else RunDir(cache.run_dir).labels(spec.key)
        if repo_type == "model":  # the card's quick start loads the local directory until it has a repository
            card = folder / "README.md"
            if card.is_file():
                atomic_write_text(card, card.read_text().replace(str(folder), repo_id))
        api.create_repo(repo_id, repo_type=repo_type, private=hub.private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, repo_type=repo_type, folder_path=str(folder), commit_message=f"w2s_align: {what}"
        )
        atomic_write_json(stage.path(PUSHED), {"repo_id": repo_id, "repo_type": repo_type, "commit": str(commit)})
        log(f"pushed {what} to {repo_id}")
        pushed.append(repo_id)
    return pushed
