"""The offline causal-LM ladder: built once, cached atomically, loaded by its hub-style id."""

from pathlib import Path


def test_offline_lm_ladder_builds_once_and_loads(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from w2s_align import lm_ladder
    from w2s_align.models import resolve_model_path

    monkeypatch.setenv("W2S_ALIGN_CACHE", str(tmp_path))
    monkeypatch.setattr(lm_ladder, "TOKENIZER", {**lm_ladder.TOKENIZER, "texts": 400, "vocab_size": 400})
    monkeypatch.setattr(lm_ladder, "PRETRAINING", {**lm_ladder.PRETRAINING, "texts": 256})
    path = Path(resolve_model_path("w2s-align/tiny-gpt2-xs"))
    assert path.parent == tmp_path / "lm_ladder" and (path / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.n_layer == 1 and model.config.n_embd == lm_ladder.RUNGS["w2s-align/tiny-gpt2-xs"]["n_embd"]
    before = (path / "model.safetensors").stat().st_mtime
    assert Path(resolve_model_path("w2s-align/tiny-gpt2-xs")) == path  # cached: not rebuilt
    assert (path / "model.safetensors").stat().st_mtime == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no half-built directory left
