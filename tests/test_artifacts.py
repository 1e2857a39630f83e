"""Artifacts are written atomically: a write that fails leaves the old file and no temporary file."""

import os
import stat

import pytest

from w2s_align.artifacts import atomic_write_json, atomic_write_text


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


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_artifacts_are_created_with_the_mode_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "metrics.json", {"accuracy": 0.7})
        atomic_write_text(tmp_path / "report.md", "# report\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == mode


def test_the_temporary_file_of_a_killed_copy_is_removed_by_the_next_write(tmp_path):
    from w2s_align.artifacts import atomic_copy

    source = tmp_path / "source.parquet"
    source.write_bytes(b"predictions")
    (tmp_path / "out").mkdir()
    stale = tmp_path / "out" / ".m.seed0.parquet.k3j2x9.tmp"  # what `kill -9` during a copy leaves
    stale.write_bytes(b"predic")
    other = tmp_path / "out" / ".n.seed0.parquet.a1b2c3.tmp"  # another file's: not this write's to remove
    other.write_bytes(b"x")
    atomic_copy(source, tmp_path / "out" / "m.seed0.parquet")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [other.name, "m.seed0.parquet"]
