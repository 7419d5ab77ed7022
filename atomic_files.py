"""Whole-or-nothing file writes: the one way the toolkit replaces a file it writes.

A reader (or a run restarted after a kill) sees either the old file or the complete new one, never a
truncated mix: the data goes to a temporary file beside the target, is fsynced (unless ``durable=False``)
and renamed over it in one ``os.replace``.

    write_atomic(path, b"...")                      # bytes or text (UTF-8)
    with replacing(path) as temporary:              # for libraries that write to a path themselves
        image.save(temporary, format="PNG")

A file written earlier that is found damaged when read back (a truncated or garbled cache, checkpoint or
shard file) is a ``DamagedFile``: its message names the file and what to do; command lines print it
and exit 1.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


class DamagedFile(ValueError):
    """A file the toolkit wrote cannot be trusted any more; ``str(error)`` names it and what to do."""


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, durable: bool = True) -> Iterator[Path]:
    """A temporary path beside `path` to write; renamed over `path` when the block ends without an error,
    removed otherwise. `durable` fsyncs the file first (survives a power failure, not only a kill)."""
    path = Path(path)
    # a name no other writer uses (process and a random part: threads write too); created by the caller
    # with the usual permissions
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    try:
        yield temporary
        if durable:
            with open(temporary, "rb+") as written:
                os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: bytes | str, *, durable: bool = True) -> None:
    """Write `data` (text as UTF-8) to `path` whole or not at all."""
    with replacing(path, durable=durable) as temporary:
        temporary.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
