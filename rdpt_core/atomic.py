"""All-or-nothing outputs: write under a temporary name beside the target, rename it into
place only when complete. A reader (or a killed run) finds the old complete output, the new
complete output or nothing, never half of one. Files and directories alike; the one helper every
writer of the project uses (the token cache keeps its own: it also fsyncs, see ``cache.py``)."""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX; elsewhere directory swaps are serialised within one process only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def _leftover_pattern(target: Path) -> re.Pattern[str]:
    """Names :func:`atomic_path` gives its temporaries and set-aside old directories."""
    return re.compile(rf"^\.{re.escape(target.name)}\.(?:tmp|old)-(\d+)-[0-9a-f]{{8}}")


def _sibling(target: Path, kind: str) -> Path:
    # the pid lets a later run tell a dead run's leftover from a live run's file in progress;
    # the suffix is kept so writers that pick a format by extension still see it
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}{target.suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:  # alive, but another user's
        return True
    except (ProcessLookupError, OverflowError):  # gone, or never a pid
        return False
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_leftovers(target: str | Path) -> list[Path]:
    """Delete what killed runs left beside ``target`` (temporaries of processes no longer alive);
    returns them. A live process's temporary is its write in progress: it stays."""
    target = Path(target)
    pattern = _leftover_pattern(target)
    gone = []
    for path in target.parent.iterdir() if target.parent.is_dir() else ():
        match = pattern.match(path.name)
        if match and not _pid_alive(int(match.group(1))):
            _remove(path)
            gone.append(path)
    return gone


_DIRECTORY_SWAP = threading.Lock()


@contextmanager
def _swap_lock(target: Path) -> Iterator[None]:
    """Two renames replace a directory, so two writers of one target must take turns (else one
    renames onto the other's fresh copy: "Directory not empty"): a lock for this process's
    threads, and an advisory lock on the parent directory for other processes (POSIX; it leaves
    no lock file behind)."""
    with _DIRECTORY_SWAP:
        if fcntl is None:
            yield
            return
        parent = os.open(target.parent, os.O_RDONLY)
        try:
            fcntl.flock(parent, fcntl.LOCK_EX)
            yield
        finally:
            os.close(parent)  # closing releases the lock


def _commit(tmp: Path, target: Path) -> None:
    if not tmp.is_dir():
        os.replace(tmp, target)
        return
    with _swap_lock(target):
        if not target.is_dir():
            os.replace(tmp, target)
            return
        old = _sibling(target, "old")  # os.replace cannot replace a non-empty directory
        os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            os.rename(old, target)  # put the old one back: it is still complete
            raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside ``target`` (same directory, same suffix) to write a file or a
    directory to; it replaces ``target`` when the block ends normally and is deleted when the
    block raises (or the process is interrupted), leaving ``target`` as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    tmp = _sibling(target, "tmp")
    try:
        yield tmp
        _commit(tmp, target)
    finally:
        _remove(tmp)
