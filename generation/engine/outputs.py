"""What a command does to the directories it writes, so that nothing a user owns is lost or silently stale.

* ``locked(directory)``: one writer at a time. The lock is an ``flock`` on ``.<name>.lock`` beside
  the directory, holding the writer's PID and command line; a second writer is refused at once with a
  ``DirectoryBusy`` naming them. The kernel drops the lock when its process dies, so the lock of a killed
  writer (SIGKILL, power failure) never blocks the next one: it is taken over, saying so.
* ``check_replaceable_release(directory, option)``: a release directory may only be replaced when it is
  missing, empty or a release (every file in it is one the release layout declares); anything else is
  the user's and is refused.
* ``retire(path)``: remove an output that no longer matches what the command produced (the release of an
  earlier run when this one wrote none, an old ``release-rejects.jsonl`` beside a new release); the
  directory is first renamed aside in one step, so a reader never sees half of it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import rms_dataset as rms
from generation.release.write import is_declared
from typed_config import ConfigError

log = logging.getLogger(__name__)


class DirectoryBusy(ConfigError):
    """Another process is writing the directory (the CLI prints the message and exits 2)."""


def lock_path(directory: str | os.PathLike) -> Path:
    """The lock file of `directory`: one however the directory is named (links, ``..``)."""
    directory = Path(directory).resolve()
    return directory.parent / f".{directory.name}.lock"


@contextlib.contextmanager
def locked(directory: str | os.PathLike, *, option: str = "--out") -> Iterator[None]:
    """Hold the write lock of `directory` for the block; `DirectoryBusy` at once if another process holds
    it (the message names `directory` as the `option` the user gave)."""
    directory = Path(directory)
    path = lock_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    command = shlex.join([Path(sys.orig_argv[0]).name, *sys.orig_argv[1:]])  # as typed: python -m generation ...
    handle = _acquire(path, directory, option)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": command,
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}))
        handle.flush()
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # under the lock: a writer that opened the old file notices it is gone (_acquire)
        handle.close()


def _acquire(path: Path, directory: Path, option: str):
    while True:
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.seek(0)
            holder = _holder(handle.read())
            handle.close()
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise DirectoryBusy(f"{option} {directory}: another process is writing it ({holder}); wait for it to finish "
                                f"or give another {option}") from None
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            handle.seek(0)
            previous = _holder(handle.read())
            if previous != "holder unknown":
                log.warning("%s %s: took over the lock of a writer that is no longer running (%s)", option, directory,
                            previous)
            return handle
        handle.close()  # the holder released and removed the file between our open and our lock: again


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"PID {info['pid']}: {info['command']}, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def check_replaceable_release(directory: str | os.PathLike, option: str = "--out") -> None:
    """`ConfigError` unless `directory` is missing, empty or holds only the files of a release."""
    directory = Path(directory)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise ConfigError(f"{option} {directory}: is a file; give a directory for the release")
    foreign = sorted(islice((path.relative_to(directory).as_posix() + ("/" if path.is_dir() else "")
                             for path in directory.rglob("*") if not _in_release_layout(path, directory)), 6))
    if foreign:
        shown = ", ".join(foreign[:5]) + (" and more" if len(foreign) > 5 else "")
        raise ConfigError(f"{option} {directory}: holds files that are not part of a release ({shown}); writing the "
                          f"release there would delete them: give a new or empty directory, or move them away")


def _in_release_layout(path: Path, root: Path) -> bool:
    relative = path.relative_to(root).as_posix()
    if path.is_dir() and not path.is_symlink():
        return relative in rms.CONFIG_NAMES  # a config's folder; its files are checked one by one
    return is_declared(relative)


RETIRED = ".retired-"


def retire(path: str | os.PathLike) -> bool:
    """Remove `path` (a file, or a directory renamed aside first so that it vanishes in one step); True if
    there was something to remove."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        aside = path.with_name(f".{path.name}{RETIRED}{os.getpid()}")
        os.replace(path, aside)
        shutil.rmtree(aside, ignore_errors=True)
        return True
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def remove_retired_leftovers(path: str | os.PathLike) -> None:
    """Finish what a killed `retire` of `path` left behind (called under the lock)."""
    path = Path(path)
    if path.parent.is_dir():
        for leftover in path.parent.glob(f".{path.name}{RETIRED}*"):
            shutil.rmtree(leftover, ignore_errors=True)


def settle_release(release_dir: str | os.PathLike, written: bool) -> list[str]:
    """After a command wrote (`written`) or did not write a release at `release_dir`: remove what no longer
    matches, the old ``<release_dir>-rejects.jsonl`` beside a new release or the old release when there is
    none. Returns a line for each thing removed."""
    release_dir = Path(release_dir)
    stale = rejects_path(release_dir) if written else release_dir
    if not retire(stale):
        return []
    why = "this release was written" if written else "this run wrote no release"
    return [f"removed {stale}, left by an earlier run ({why}; it no longer matched the run's outcome)"]


def rejects_path(release_dir: Path) -> Path:
    """Where every reject goes when no release can be written (`finalize`)."""
    return release_dir.with_name(release_dir.name + "-rejects.jsonl")
