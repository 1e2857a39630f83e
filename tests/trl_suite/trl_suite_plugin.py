"""pytest plugin for the vendored TRL trainer tests (`-p trl_suite_plugin`, see `run.py`).

- `--trl-suite-classes=w2s` puts `W2SRewardTrainer`/`W2SRewardConfig`/`W2SDPOTrainer`/`W2SDPOConfig` in the test
  modules' namespaces in place of TRL's classes (the vendored files stay unchanged); `trl` (the default) leaves
  TRL's own classes.
- `load_dataset("trl-internal-testing/<name>", <config>, split=..., streaming=...)` in the test modules reads the local
  parquet stand-ins (`--trl-suite-data`); the models are found in the Hub cache that `run.py` points `HF_HUB_CACHE` at.
- `lazy_shared_datadir` (from pytest-datadir, which TRL's tests use) is provided here.
- Tests whose artifacts have no stand-in are skipped with the reason (`SKIPS`).
- Helpers that the pinned tests' `testing_utils.py` imports from `trl.import_utils` and that the installed TRL
  no longer has (`is_joblib_available`) are supplied (`COMPAT`), so the vendored helpers import unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SUBSTITUTES = {
    "RewardTrainer": "W2SRewardTrainer",
    "RewardConfig": "W2SRewardConfig",
    "DPOTrainer": "W2SDPOTrainer",
    "DPOConfig": "W2SDPOConfig",
}

NO_VLM = (
    "vision-language stand-ins not built: the tiny VLMs need their processors (image processors, image tokens) "
    "from the Hub; W2SDPOTrainer adds nothing of its own for images"
)
# nodeid fragment -> reason. Matched against `file::Class::test[params]`.
# Tests that SKIPS would skip but that need only the stand-in image dataset and a text model.
RUN_ANYWAY = ("test_dpo_trainer.py::TestDPOTrainerVLM::test_vision_dataset_with_text_model_raises",)
SKIPS = {
    "test_dpo_trainer.py::TestDPOTrainerVLM::": NO_VLM,
    "test_dpo_trainer.py::TestDataCollatorForVisionPreference::": NO_VLM,
    "test_dpo_trainer.py::TestDPOTrainerSlow::": "google/gemma-3n-E2B-it is gated (skipped upstream too)",
}


def _is_joblib_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("joblib") is not None


COMPAT = {"is_joblib_available": _is_joblib_available}


def pytest_configure(config):
    import importlib

    import_utils = importlib.import_module("trl.import_utils")  # `trl` is a lazy module: no attribute access
    for name, function in COMPAT.items():
        if not hasattr(import_utils, name):
            setattr(import_utils, name, function)


def pytest_addoption(parser):
    group = parser.getgroup("trl_suite")
    group.addoption("--trl-suite-classes", choices=["trl", "w2s"], default="trl", help="whose trainer classes run")
    group.addoption("--trl-suite-data", default=None, help="root of the stand-in parquet datasets")


def local_load_dataset(data_root: Path):
    import datasets

    def load_dataset(path, name=None, *args, split=None, streaming=False, **kwargs):
        if isinstance(path, str) and path.startswith("trl-internal-testing/"):
            if args or kwargs:
                raise TypeError(f"stand-in load_dataset takes name, split and streaming only, got {args} {kwargs}")
            folder = data_root / path.split("/", 1)[1] / name
            if not folder.is_dir():
                raise FileNotFoundError(f"no stand-in for dataset {path!r} config {name!r} (looked in {folder})")
            files = {p.stem: str(p) for p in sorted(folder.glob("*.parquet"))}
            return datasets.load_dataset("parquet", data_files=files, split=split, streaming=streaming)
        return datasets.load_dataset(path, name, *args, split=split, streaming=streaming, **kwargs)

    return load_dataset


def pytest_collection_modifyitems(session, config, items):
    classes = config.getoption("--trl-suite-classes")
    data_root = config.getoption("--trl-suite-data")
    substitutes = {}
    if classes == "w2s":
        import w2s_align

        substitutes = {name: getattr(w2s_align, w2s) for name, w2s in SUBSTITUTES.items()}
    loader = local_load_dataset(Path(data_root)) if data_root else None
    for module in {item.module for item in items if getattr(item, "module", None) is not None}:
        for name, cls in substitutes.items():
            if hasattr(module, name):
                setattr(module, name, cls)
        if loader is not None and hasattr(module, "load_dataset"):
            module.load_dataset = loader
    for item in items:  # the classes each test will find in its module, in the report (`record_property`)
        module = getattr(item, "module", None)
        used = sorted(
            f"{getattr(module, n).__module__}.{getattr(module, n).__name__}" for n in SUBSTITUTES if hasattr(module, n)
        )
        item.user_properties.append(("trainer_classes", " ".join(used)))
    for item in items:
        nodeid = item.nodeid.split("tests/", 1)[-1]
        if nodeid in RUN_ANYWAY:
            continue
        for fragment, reason in SKIPS.items():
            if fragment in nodeid:
                item.add_marker(pytest.mark.skip(reason=f"[trl_suite] {reason}"))
                break


@pytest.fixture
def lazy_shared_datadir(request, tmp_path) -> Path:
    """pytest-datadir's fixture: a copy of the `data` folder beside the test module."""
    source = Path(str(request.fspath)).parent / "data"
    target = tmp_path / "shared_data"
    shutil.copytree(source, target)
    return target
