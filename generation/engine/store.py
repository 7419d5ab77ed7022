"""Append-only JSONL checkpoints: one file per step fingerprint, one line per finished item.

Group commit: ``add`` buffers finished items; ``commit`` appends the buffer in one write and one fsync.
The executor commits every ``COMMIT_EVERY`` items or ``COMMIT_INTERVAL_S`` seconds and at the end of each
step, so a fast model pays one fsync per batch, not per line. A run killed at any point (SIGKILL, mid-batch
or mid-line) loses at most the uncommitted batch and leaves at most one torn last line; reopening the store
drops that line and keeps every complete one before it (the lost items are re-done; their model calls come
back from the call cache). A key that appears twice keeps its first value, so a resumed step never
duplicates an item.

A damaged line elsewhere (not JSON, no key, or a value `valid` refuses, e.g. edited by hand) is dropped
with a warning naming the file and line, and the file is rewritten without it: its item is redone.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from atomic_files import write_atomic


def read_jsonl(path: Path, fix: str = "") -> list[Any]:
    """Every non-blank line of a JSONL file; a bad line is a ValueError naming file and line (+ `fix`)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error}){'; ' + fix if fix else ''}") from None
    return rows


log = logging.getLogger(__name__)

COMMIT_EVERY = 256
COMMIT_INTERVAL_S = 1.0


class StepStore:
    def __init__(self, path: str | os.PathLike, *, commit_every: int = COMMIT_EVERY,
                 commit_interval_s: float = COMMIT_INTERVAL_S, valid: Callable[[Any], bool] = lambda value: True):
        self.path = Path(path)
        self.valid = valid
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, Any] = {}
        self._buffer: list[tuple[str, Any]] = []
        self._buffered_since = 0.0
        self.commit_every, self.commit_interval_s = commit_every, commit_interval_s
        self.commits = 0
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        start, damaged = 0, []
        for number, line_end in enumerate(_line_ends(data), 1):
            try:
                entry = json.loads(data[start:line_end])
                key, value = entry["key"], entry["value"]
                if not isinstance(key, str) or not self.valid(value):
                    raise ValueError("not a checkpoint entry")
            except (ValueError, KeyError, TypeError):
                damaged.append(number)
            else:
                self._records.setdefault(key, value)
            start = line_end + 1
        if damaged:
            log.warning("%s: %d damaged checkpoint line(s) dropped (line %s%s); their items are redone", self.path,
                        len(damaged), damaged[0], " and more" if len(damaged) > 1 else "")
            self._rewrite(self._records)
        elif start != len(data):  # a torn last line (a kill mid-write): dropped and redone
            with open(self.path, "r+b") as handle:
                handle.truncate(start)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str, default: Any = None) -> Any:
        return self._records.get(key, default)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self._records.items())

    def add(self, key: str, value: Any) -> None:
        """Record a finished item (visible at once; on disk at the next commit, which this may trigger)."""
        if key in self._records:
            return
        self._records[key] = value
        if not self._buffer:
            self._buffered_since = time.monotonic()
        self._buffer.append((key, value))
        if len(self._buffer) >= self.commit_every or time.monotonic() - self._buffered_since >= self.commit_interval_s:
            self.commit()

    def commit(self) -> None:
        """Append the buffered items: one write, one fsync."""
        if not self._buffer:
            return
        payload = "".join(json.dumps({"key": k, "value": v}, ensure_ascii=False, sort_keys=True) + "\n" for k, v in self._buffer)
        self._write(payload.encode("utf-8"))
        self._buffer = []
        self.commits += 1

    def _write(self, payload: bytes) -> None:
        with open(self.path, "ab") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, key: str, value: Any) -> None:
        """`add` and commit at once."""
        self.add(key, value)
        self.commit()

    def forget(self, predicate) -> int:
        """Drop every entry whose value satisfies `predicate` (e.g. recorded call errors, to retry them after an
        outage); the file is rewritten atomically. Returns how many were dropped."""
        self.commit()
        kept = {key: value for key, value in self._records.items() if not predicate(value)}
        dropped = len(self._records) - len(kept)
        if dropped:
            self._rewrite(kept)
        return dropped

    def replace(self, key: str, value: Any) -> None:
        """Record `value` under `key` even where the key holds another value (which is then dropped: the file
        is rewritten atomically; rare, e.g. a photo ingested again whose normalised bytes changed)."""
        if key in self._records and self._records[key] != value:
            self.commit()
            self._rewrite({k: v for k, v in self._records.items() if k != key})
        self.add(key, value)

    def _rewrite(self, kept: dict[str, Any]) -> None:
        write_atomic(self.path, "".join(json.dumps({"key": key, "value": value}, ensure_ascii=False, sort_keys=True) + "\n"
                                        for key, value in kept.items()))
        self._records = kept


def _line_ends(data: bytes) -> Iterator[int]:
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return
        yield end
        start = end + 1
