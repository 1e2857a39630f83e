"""How a failed write is told apart: the machine refusing it (a full disk, no permission) or a defect."""

import errno
import shutil

from w2s_align.errors import storage_problem


def test_the_systems_refusals_are_named_with_their_file():
    assert storage_problem(PermissionError(errno.EACCES, "Permission denied", "runs/x/DONE.json")) == (
        "runs/x/DONE.json: Permission denied"
    )
    assert storage_problem(OSError(errno.EROFS, "Read-only file system")) == "Read-only file system"


def test_a_refusal_wrapped_in_another_error_is_found_in_its_chain():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "runs/x/predictions.parquet")
        except OSError as error:
            raise RuntimeError("writing the predictions failed") from error
    except RuntimeError as wrapped:
        assert storage_problem(wrapped) == "runs/x/predictions.parquet: No space left on device"


def test_a_silent_writer_is_blamed_on_the_disk_only_when_it_is_full(tmp_path, monkeypatch):
    error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 6976 vs 6868")
    assert storage_problem(error, [tmp_path]) is None  # space left: a defect, shown with its traceback
    disk_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda where: disk_usage(where)._replace(free=5 * 2**20))
    assert storage_problem(error, [tmp_path / "run" / "not-made-yet"]) == (
        f"{tmp_path / 'run' / 'not-made-yet'}: the disk is full (5 MiB free), the likely cause of: [enforce fail at "
        "inline_container.cc:672] . unexpected pos 6976 vs 6868"
    )


def test_other_errors_are_not_the_machines():
    assert storage_problem(ValueError("shapes do not match")) is None
    assert storage_problem(OSError(errno.ENOENT, "No such file or directory", "x")) is None
