r"""The one exception type for user mistakes, how a library's error is quoted in its message, and how the machine
refusing to store something (a full disk, no permission) is told from a defect.

Example:

```python
>>> from w2s_align.errors import first_line
>>> first_line(ValueError("no such file\nTraceback details"))
'no such file'
>>> first_line(KeyError())
'KeyError'
```
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path


class W2SInputError(Exception):
    """Bad input from the user: a recipe key, a value's type, a dataset column, a data line, a model path.

    The command line prints the message alone (no traceback) and exits with code 2, before any training starts. The
    message names the file, key or line at fault.
    """


def first_line(error: BaseException) -> str:
    """The first line of `error`'s message (a library's message can run to a page), or its type's name without one."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# The machine refusing to store something, not a defect of the run: a full disk or quota, no permission, a read-only
# file system, a file too large for it.
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG})
# The same, from writers that raise no OSError of that number (safetensors quotes the system's words, `datasets`
# checks the space itself).
_STORAGE_WORDS = (
    "No space left on device", "Not enough disk space", "Disk quota exceeded", "Read-only file system",
    "Permission denied",
)  # fmt: skip
# Below this much free space a failed write is taken to be the full disk's doing (torch's zip writer then says only
# "unexpected pos").
_LOW_SPACE = 64 * 2**20


def storage_problem(error: BaseException, directories: Iterable[str | Path] = ()) -> str | None:
    """One line when `error` is the machine refusing to store something (a full disk or quota, no permission, a
    read-only file system) rather than a defect; None otherwise. A writer that does not say why it failed is taken to
    have met a full disk when one of `directories` (those the command writes) has almost no space left.

    ```python
    >>> import errno
    >>> storage_problem(OSError(errno.ENOSPC, "No space left on device", "runs/x/model.safetensors"))
    'runs/x/model.safetensors: No space left on device'
    >>> storage_problem(ValueError("a defect")) is None
    True
    ```
    """
    seen: BaseException | None = error
    for _ in range(16):  # an exception's context chain is short; a cycle must not hang the message
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno is not None:  # the system's own reason: trusted as given
            if seen.errno not in _STORAGE_ERRNOS:
                return None
            where = f"{seen.filename}: " if seen.filename else ""
            return where + (seen.strerror or os.strerror(seen.errno))
        if any(words in str(seen) for words in _STORAGE_WORDS):
            return first_line(seen)
        seen = seen.__cause__ or seen.__context__
    for directory in directories:
        free = free_space(Path(directory))
        if free is not None and free < _LOW_SPACE:
            return (
                f"{directory}: the disk is full ({free // 2**20} MiB free), the likely cause of: {first_line(error)}"
            )
    return None


def free_space(path: Path) -> int | None:
    """Free bytes on the disk that holds `path` (or the nearest folder above it that exists); None for a file system
    that holds no data (such as /proc)."""
    for folder in (path, *path.parents):
        try:
            usage = shutil.disk_usage(folder)
        except OSError:
            continue
        return usage.free if usage.total else None
    return None
