"""One run per output directory: a lock file that a second run finds, on this machine or on another node.

`w2s-align run` (and `analyze`) hold `<output_dir>/w2s-align.lock` while they write there. The file is created
atomically (`O_CREAT | O_EXCL`, which shared filesystems honour across nodes) and names its holder: host, process id
and start time. A second run on the same directory stops with one line naming the holder. A lock that a killed run
left behind does not block forever: on the same machine it is stale as soon as its process is gone; from another
machine, when its holder has not refreshed it (every [`HEARTBEAT_SECONDS`]) for [`STALE_SECONDS`]. "The same
machine" is the same host name, boot and process-id namespace ([`machine_id`]): containers often share a host name,
and a process id means nothing in another container.

Example:

```python
>>> from w2s_align.run_lock import RunLock
>>> with RunLock("runs/demo"):  # doctest: +SKIP
...     ...  # write into runs/demo; a second `with RunLock("runs/demo")` elsewhere raises W2SInputError
```
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from .errors import W2SInputError, free_space

LOCK_FILE = "w2s-align.lock"
HEARTBEAT_SECONDS = 60.0
# Several missed heartbeats: a holder on another host that has not refreshed its lock for this long is gone.
STALE_SECONDS = 600.0


def check_output_dir(run_dir: Path) -> None:
    """Stop on an output directory that cannot be made or written, before anything runs: a name longer than the
    filesystem takes, a file in its place or above it, a parent without write permission, or a file system that
    refuses a new folder."""
    for part in run_dir.parts:
        if len(os.fsencode(part)) > 255:  # what Linux and macOS filesystems take
            raise W2SInputError(f"output_dir {str(run_dir)[:60]}...: a name in it is longer than 255 bytes")
    for link in (run_dir, *run_dir.parents):
        if link.is_symlink() and not link.exists():  # dangling, or a loop: mkdir would fail only when the run writes
            raise W2SInputError(
                f"output_dir {run_dir}: {link} is a symbolic link that leads nowhere (to {os.readlink(link)})"
            )
    if run_dir.is_dir():
        _check_links_inside(run_dir)
    existing = run_dir
    while not existing.exists():  # the nearest existing directory: the one the run's folders are made in
        existing = existing.parent
    if not existing.is_dir():
        raise W2SInputError(f"output_dir {run_dir}: cannot be made a directory ({existing} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise W2SInputError(f"output_dir {run_dir}: cannot be written (no write permission on {existing})")
    try:  # what permissions do not tell: a read-only or full file system, or one that holds no files (/proc)
        os.rmdir(tempfile.mkdtemp(prefix=".w2s-align-check-", dir=existing))
    except OSError as error:
        raise W2SInputError(f"output_dir {run_dir}: cannot be written ({error.strerror} in {existing})") from None


def _check_links_inside(run_dir: Path) -> None:
    """Stop on a symbolic link inside the run directory that leads out of it (a `predictions/` linked elsewhere): the
    run writes only under `output_dir` (link `output_dir` itself to put a run on another disk)."""
    top = run_dir.resolve()
    for folder, subfolders, files in os.walk(run_dir):
        for name in subfolders + files:
            path = Path(folder) / name
            if path.is_symlink() and not path.resolve().is_relative_to(top):
                raise W2SInputError(
                    f"output_dir {run_dir}: {path} is a symbolic link out of the run directory (to "
                    f"{os.readlink(path)}); a run writes only inside it: remove the link, or link output_dir itself"
                )


def check_free_space(run_dir: Path, needed: int, what: str) -> None:
    """Stop before training when the disk of `run_dir` cannot hold the `needed` bytes of `what` (a lower bound: a
    run that would fill the disk halfway is stopped only when it does)."""
    free = free_space(run_dir)
    if free is not None and free < needed:
        raise W2SInputError(
            f"output_dir {run_dir}: {what} take at least {_size(needed)}, and its disk has {_size(free)} free"
        )


def _size(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"


class RunLock:
    """The lock on `run_dir` (see the module); `acquire` raises `W2SInputError` when another live run holds it or
    when `run_dir` cannot be written."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._held: str | None = None
        self._made_dir = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> None:
        if self._held is not None:
            return
        try:
            check_output_dir(self.run_dir)
            self._made_dir = not self.run_dir.exists()
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise W2SInputError(f"output_dir {self.run_dir}: cannot be made a directory ({error.strerror})") from None
        holder = json.dumps(
            {"host": socket.gethostname(), "machine": machine_id(), "pid": os.getpid(), "started": time.strftime("%c")}
        )
        for _ in range(3):  # a stale lock is removed, then taken; a run that takes it first wins
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._remove_if_stale()
                continue
            except OSError as error:
                raise W2SInputError(f"output_dir {self.run_dir}: cannot be written ({error.strerror})") from None
            with os.fdopen(fd, "w") as handle:
                handle.write(holder + "\n")
            self._held = holder
            self._stop.clear()
            self._heartbeat = threading.Thread(target=self._refresh, name="w2s-align-lock", daemon=True)
            self._heartbeat.start()
            return
        raise self._busy()

    def release(self) -> None:
        if self._held is None:
            return
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        if self._read() == self._held:  # never remove a lock that another run has taken since
            self.path.unlink(missing_ok=True)
            if self._made_dir and not any(self.run_dir.iterdir()):  # a run that stopped before writing anything
                self.run_dir.rmdir()
        self._held = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _refresh(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except OSError:
                return

    def _read(self) -> str | None:
        try:
            return self.path.read_text().strip()
        except OSError:
            return None

    def _remove_if_stale(self) -> None:
        """Remove the lock if its holder is gone, else raise the busy message."""
        text = self._read()
        try:
            holder = json.loads(text) if text else {}
            age = time.time() - self.path.stat().st_mtime
        except (ValueError, OSError):
            return  # being written or just removed: look again
        if holder.get("machine") == machine_id() and isinstance(holder.get("pid"), int):
            stale = not _alive(holder["pid"])
        else:  # another machine or container (or an unreadable holder): only the heartbeat tells
            stale = age > STALE_SECONDS
        if not stale:
            raise self._busy(holder)
        if self._read() == text:
            self.path.unlink(missing_ok=True)

    def _busy(self, holder: dict | None = None) -> W2SInputError:
        holder = holder or {}
        who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
        return W2SInputError(
            f"output_dir {self.run_dir}: another w2s-align run is using it ({who}); wait for it to finish or choose "
            f"another output_dir (if no run is active, delete {self.path})"
        )


def machine_id() -> str:
    """Where a process id means something: the host name, its boot and this process's pid namespace."""
    parts = [socket.gethostname()]
    for source in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(Path(source).read_text().strip() if "boot_id" in source else str(os.stat(source).st_ino))
        except OSError:
            parts.append("?")
    return "/".join(parts)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
