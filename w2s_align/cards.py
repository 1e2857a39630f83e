"""Model and dataset cards, the papers the trainers cite, and the Hub ids of a run's models and labels.

Every model the pipeline trains gets a `README.md` in its directory (`stages/<stage>/model/`): TRL's model card
(written by the trainer's `create_model_card`, which cites the trainer's `_paper`), followed by a weak-to-strong
section with the recipe, the model's teacher and its test metrics. Every teacher's weak labels are written as a Hub
dataset directory (`labels/<teacher>/`: the split as parquet and a dataset card naming the labeler, recipe and stage
hash; pushed, `datasets.load_dataset` reads it as a `DatasetDict`). With `hub.push`, the models and labels a recipe
names are pushed to repositories named after the run and the stage (see [`hub_model_id`]).

Example:

```python
>>> from w2s_align.cards import hub_model_id
>>> hub_model_id("my-org", "quickstart", "minilm-l3.from-minilm-l1.xent.seed0")
'my-org/quickstart-minilm-l3.from-minilm-l1.xent.seed0'
```
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

BURNS_2023 = {
    "title": "Weak-to-Strong Generalization: Eliciting Strong Capabilities With Weak Supervision",
    "id": "2312.09390",
    "citation": textwrap.dedent("""\
        @article{burns2023weak,
            title   = {{Weak-to-Strong Generalization: Eliciting Strong Capabilities With Weak Supervision}},
            author  = {Collin Burns and Pavel Izmailov and Jan Hendrik Kirchner and Bowen Baker and Leo Gao and Leopold Aschenbrenner and Yining Chen and Adrien Ecoffet and Manas Joglekar and Jan Leike and Ilya Sutskever and Jeff Wu},
            year    = 2023,
            journal = {arXiv preprint arXiv:2312.09390},
        }"""),  # noqa: E501
}
YANG_2025 = {
    "title": "Super(ficial)-alignment: Strong Models May Deceive Weak Models in Weak-to-Strong Generalization",
    "id": "2406.11431",
    "citation": textwrap.dedent("""\
        @inproceedings{yang2025superficial,
            title     = {{Super(ficial)-alignment: Strong Models May Deceive Weak Models in Weak-to-Strong Generalization}},
            author    = {Wenkai Yang and Shiqi Shen and Guangyao Shen and Wei Yao and Yong Liu and Zhi Gong and Yankai Lin and Ji-Rong Wen},
            year      = 2025,
            booktitle = {The Thirteenth International Conference on Learning Representations, ICLR 2025},
        }"""),  # noqa: E501
}


def cite(primary: dict[str, str], also: dict[str, str]) -> dict[str, str]:
    """A trainer's `_paper`: `primary` is the paper the card links, and both papers' BibTeX are cited."""
    return {**primary, "citation": primary["citation"] + "\n\n" + also["citation"]}


def trl_base(cls: type) -> type:
    """The library class a w2s_align class extends: TRL's (`RewardConfig` for `W2SRewardConfig`, `DPOTrainer` for
    `W2SDPOTrainer`, ...), or transformers' for a class TRL has no counterpart of (`Trainer` for
    `W2SClassifierTrainer`)."""
    return next(base for base in cls.__mro__ if base.__module__.startswith(("trl.", "transformers.")))


def record_base_model(trainer: Any, model_dir: Path, base_model: str) -> None:
    """Name `base_model` as the user named it (a Hub id, or a local path) where transformers and PEFT record the
    directory the weights were loaded from, an offline copy's for a Hub model: the config (TRL's card reads its base
    model there) and a saved LoRA adapter's `adapter_config.json`."""
    import json

    from .artifacts import atomic_write_json

    trainer.model.config._name_or_path = base_model
    adapter = model_dir / "adapter_config.json"
    if trainer.is_world_process_zero() and adapter.is_file():
        atomic_write_json(adapter, {**json.loads(adapter.read_text()), "base_model_name_or_path": base_model})


def hub_model_id(namespace: str, recipe_name: str, key: str) -> str:
    """The Hub repository of a run's model: `<namespace>/<recipe>-<model key>`, in the characters the Hub allows
    (letters, digits, `-`, `_`, `.`; at most 96)."""
    from .artifacts import bounded_name

    name = bounded_name(re.sub(r"[^A-Za-z0-9._-]+", "-", f"{recipe_name}-{key}").strip("-."), 96).replace("~", "-")
    return f"{namespace}/{name}"


def w2s_section(recipe_name: str, model: dict[str, Any], teachers: list[str], metrics: dict[str, Any]) -> str:
    """The weak-to-strong part of a model card: which experiment, which teacher, how it scored on the test split, and
    how to load it (`model`: its `label`, `seed`, `rung`, and where it is saved, as for [`loading_section`])."""
    lines = ["", "## Weak-to-strong", "", f"- Trained with w2s_align by the recipe `{recipe_name}`"]
    rung = model["rung"]
    start = f"from `{rung.model}`"
    if rung.random_init:
        start = f"randomly initialised with the architecture of `{rung.model}` (none of its weights)"
    if rung.num_layers is not None:
        start += f", cut to its first {rung.num_layers} layer{'s' if rung.num_layers != 1 else ''}"
    lines.append(f"- Model: {model['label']}, seed {model['seed']}, {start}")
    if teachers:
        lines.append(f"- Trained on the labels of: {' -> '.join(f'`{t}`' for t in teachers)}")
    else:
        lines.append("- Trained on ground-truth labels (a ceiling)")
    lines.append(f"- Test accuracy: {metrics['accuracy']:.4f} on {metrics['num_test_pairs']} pairs")
    config = {**rung.config_overrides, **({"num_hidden_layers": rung.num_layers} if rung.num_layers else {})}
    base = None if rung.random_init else (rung.model, rung.revision)
    return "\n".join(lines) + "\n" + loading_section(model["path"], model["auto_class"], base, config)


def trainer_section(args: Any, soft_labels: bool) -> str:
    """The weak-to-strong part of the card of a model trained by `w2s-align reward` / `w2s-align dpo` (or the
    trainers in one's own code): the student loss with its settings, the labels it learned from, the conflict."""
    from .options import LOSS_SETTINGS

    settings = ", ".join(f"`{name}={getattr(args, name)!r}`" for name in LOSS_SETTINGS[args.student_loss])
    lines = [
        "",
        "## Weak-to-strong",
        "",
        f"- Student loss: `{args.student_loss}`" + (f" ({settings})" if settings else ""),
    ]
    if soft_labels:
        lines.append(
            "- Labels: soft, the training data's `soft_label` column (a weak supervisor's P(chosen is better))"
        )
    else:
        lines.append("- Labels: hard (no `soft_label` column): every label 1, TRL's own loss")
    if args.conflict_alpha:
        lines.append(f"- Explicit conflict: `conflict_alpha={args.conflict_alpha}`")
    return "\n".join(lines) + "\n"


def loading_section(path: str, auto_class: str, base: tuple[str, str | None] | None, config: dict[str, Any]) -> str:
    """How to load the model saved at `path` as it was trained. A LoRA adapter (`adapter_config.json` there) is
    loaded onto its base built as it was: `base` (the model and its revision; None for a randomly initialised base,
    whose weights were not saved) with `config`, the settings its architecture was built with (a cut to fewer layers,
    config overrides). PEFT's `AutoPeftModel` would build the whole model that `adapter_config.json` names, without a
    word, so the card says not to use it. A whole model's own config holds `config` already."""
    head = ", num_labels=1" if auto_class == "AutoModelForSequenceClassification" else ""
    lines = ["", "### Loading", ""]
    if not (Path(path) / "adapter_config.json").is_file():
        code = [f"from transformers import {auto_class}", "", f'model = {auto_class}.from_pretrained("{path}")']
        return "\n".join([*lines, "```python", *code, "```"]) + "\n"
    if base is None:
        lines.append(
            "A LoRA adapter of a randomly initialised model: the base's weights were not saved, so this adapter "
            "cannot be loaded as it was trained."
        )
        return "\n".join(lines) + "\n"
    model, revision = base
    arguments = "".join(
        f", {key}={value!r}" for key, value in {**config, **({"revision": revision} if revision else {})}.items()
    )
    code = [
        "from peft import PeftModel",
        f"from transformers import {auto_class}",
        "",
        f'base = {auto_class}.from_pretrained("{model}"{head}{arguments})',
        f'model = PeftModel.from_pretrained(base, "{path}")',
    ]
    note = "A LoRA adapter, loaded onto its base as it was built"
    if config:
        note += f" ({', '.join(f'`{key}={value!r}`' for key, value in config.items())})"
        note += ": `AutoPeftModel` would build the base that `adapter_config.json` names whole, without a word"
    return "\n".join([*lines, note + ":", "", "```python", *code, "```"]) + "\n"


def name_local_base(card: str, base_model: str) -> str:
    """TRL's model card text with a base model it cannot name on the Hub (a local directory), which it links as
    "[None]", named as `base_model`."""
    return card.replace("[None](https://huggingface.co/None)", f"the local model `{base_model}`")


def write_model_card(trl_card: Path, model_dir: Path, section: str, base_model: str) -> None:
    """Write `model_dir/README.md`: the card TRL wrote (`trl_card`, if any), then the weak-to-strong `section`.
    A local `base_model` is named as [`name_local_base`] does."""
    from .artifacts import atomic_write_text

    text = trl_card.read_text().rstrip("\n") + "\n" if trl_card.is_file() else ""
    text = name_local_base(text, base_model)
    atomic_write_text(model_dir / "README.md", text + section)


# What each column of a weak-label dataset holds (the card's table); other columns come from the source pairs.
LABEL_COLUMNS = {
    "id": "the pair's id in the source data (or its split and row number)",
    "prompt": "the prompt, as text",
    "chosen": "one response: the one `soft_label` and `gt_label` say is better with probability 1",
    "rejected": "the other response (`chosen`/`rejected` are stored in a random order, not by quality)",
    "soft_label": "the labeler's probability that `chosen` is better: what a student learns from",
    "labeler": "the teacher and the stage that labelled the pair (`<teacher>@<stage>`)",
    "gt_label": "the ground truth (1: `chosen` is better), kept for analysis only: no student reads it",
    "reward_chosen": "the labeler's score of `chosen` (a reward model)",
    "reward_rejected": "the labeler's score of `rejected` (a reward model)",
    "helpful_label": "1 where `chosen` is also the more helpful response (the implicit conflict)",
    "harmful": "whether the pair has a harmful response (synthetic data)",
    "kind": "a tag of the pair's kind, reported per kind",
}


def write_label_dataset(labels: Any, split: str, directory: Path, facts: dict[str, Any], version: str) -> None:
    """Write weak labels as a Hub dataset directory: `data/<split>-<version>-00000-of-00001.parquet` and a `README.md`
    card whose metadata declares the split, the features and the license, and whose text lists `facts` (labeler,
    recipe, stage hash, ...) and what each column holds. `version` (the labeling stage's hash) names the file:
    `datasets` caches a local folder by its name and its files' names, so two label folders of one name (two runs, or
    one relabelled) would otherwise load as whichever was loaded first. A file of an earlier labeling is removed."""
    from huggingface_hub import DatasetCardData

    from .artifacts import atomic_write_parquet, atomic_write_text

    data_file = f"data/{split}-{version}-00000-of-00001.parquet"
    for stale in (directory / "data").glob("*.parquet"):
        if stale.name != Path(data_file).name:
            stale.unlink()
    atomic_write_parquet(labels, directory / data_file)
    features = [
        {"name": name, "dtype": str(getattr(feature, "dtype", feature))} for name, feature in labels.features.items()
    ]
    card_data = DatasetCardData(
        license="other",
        tags=["weak-to-strong", "w2s-align", "preference"],
        configs=[{"config_name": "default", "data_files": [{"split": split, "path": data_file}]}],
        dataset_info={"features": features, "splits": [{"name": split, "num_examples": labels.num_rows}]},
    )
    lines = [f"# Weak labels: {facts['teacher']}", ""]
    lines += [f"- {key}: `{value}`" for key, value in facts.items()]
    lines += [
        "",
        "Each row is a preference pair with the labeler's `soft_label`. License: that of the source pairs (the labels "
        "are a model's outputs on them).",
        "",
        "| column | type | what it holds |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| `{f['name']}` | {f['dtype']} | {LABEL_COLUMNS.get(f['name'], 'from the source pairs')} |" for f in features
    ]
    atomic_write_text(directory / "README.md", f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")
