"""Stage keys: what determines a stage, content digests of data files, and the cache version."""

import json
import os

from w2s_align import cache
from w2s_align.cache import Stage, StageCache
from w2s_align.plan_builder import build_plan
from w2s_align.recipe_yaml import recipe_from_dict
from w2s_align.synthetic import generate_pairs


def test_a_stage_is_keyed_by_its_determinants_not_their_order(tmp_path):
    first = Stage(tmp_path, "train-x", {"lr": 1e-5, "data": "abc"})
    assert Stage(tmp_path, "train-x", {"data": "abc", "lr": 1e-5}).dir == first.dir
    assert Stage(tmp_path, "train-x", {"data": "abc", "lr": 2e-5}).hash != first.hash
    assert first.dir == tmp_path / "stages" / f"train-x-{first.hash}" and not first.done
    first.begin()
    first.finish({"accuracy": 0.5})
    assert first.done and first.summary()["accuracy"] == 0.5


def test_bumping_the_cache_version_invalidates_every_stage(tmp_path, monkeypatch):
    before = Stage(tmp_path, "train-x", {"lr": 1e-5}).hash
    monkeypatch.setattr(cache, "CACHE_VERSION", cache.CACHE_VERSION + 1)
    assert Stage(tmp_path, "train-x", {"lr": 1e-5}).hash != before


def test_the_data_stage_follows_file_contents_not_timestamps(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = generate_pairs(12, seed=5).to_list()
    (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    raw = {
        "name": "x",
        "ladder": [{"name": "a", "model": "m"}, {"name": "b", "model": "m"}],
        "data": {"source": "preference", "path": str(data), "gt_size": 4, "w2s_size": 4},
    }

    def data_hash() -> str:
        return StageCache(tmp_path / "run").stage(build_plan(recipe_from_dict(raw)).data).hash

    before = data_hash()
    os.utime(data / "train.jsonl", (1, 1))  # a copy or a re-mount changes timestamps, not data
    assert data_hash() == before
    rows[0]["chosen"], rows[0]["rejected"] = rows[0]["rejected"], rows[0]["chosen"]
    (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert data_hash() != before
