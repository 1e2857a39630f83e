"""Artifacts are written atomically: a write that fails leaves the old file and no temporary file."""

import pytest


def test_atomic_write_keeps_the_old_file_when_a_write_fails(tmp_path, monkeypatch):
    from w2s_align import artifacts

    target = tmp_path / "metrics.json"
    artifacts.atomic_write_text(target, "old")

    def killed(*args, **kwargs):
        raise OSError("disk full")

    # The new content is written to a temporary file, then the process dies before it replaces the target.
    monkeypatch.setattr(artifacts.os, "fsync", killed)
    with pytest.raises(OSError):
        artifacts.atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left behind
