"""Append-only JSONL checkpoints: one file per step, one line per finished item, fsync'd.

A run killed at any point (even SIGKILL, mid-line) leaves at most one torn last line; reopening the store
drops that line (it is re-done; its model calls come back from the call cache) and keeps everything else.
A key that appears twice keeps its first value, so a resumed step never duplicates an item.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator


def read_jsonl(path: Path, fix: str = "") -> list[Any]:
    """Every non-blank line of a JSONL file; a bad line is a ValueError naming file and line (+ `fix`)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error}){'; ' + fix if fix else ''}") from None
    return rows


class StepStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, Any] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = 0
        for line_end in _line_ends(data):
            line = data[good_end:line_end]
            try:
                entry = json.loads(line)
                key, value = entry["key"], entry["value"]
            except (ValueError, KeyError, TypeError):
                break  # a torn write: everything from here on is dropped and redone
            self._records.setdefault(key, value)
            good_end = line_end + 1
        if good_end != len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str, default: Any = None) -> Any:
        return self._records.get(key, default)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self._records.items())

    def append_many(self, entries: list[tuple[str, Any]]) -> None:
        """Append (key, value) pairs that are not stored yet; one write + fsync for the batch."""
        fresh = [(k, v) for k, v in entries if k not in self._records]
        if not fresh:
            return
        payload = "".join(json.dumps({"key": k, "value": v}, ensure_ascii=False, sort_keys=True) + "\n" for k, v in fresh)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        for key, value in fresh:
            self._records.setdefault(key, value)

    def append(self, key: str, value: Any) -> None:
        self.append_many([(key, value)])

    def forget(self, predicate) -> int:
        """Drop every entry whose value satisfies `predicate` (e.g. recorded call errors, to retry them after an
        outage); the file is rewritten atomically. Returns how many were dropped."""
        kept = {key: value for key, value in self._records.items() if not predicate(value)}
        dropped = len(self._records) - len(kept)
        if dropped:
            tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
            with open(tmp, "w", encoding="utf-8") as handle:
                for key, value in kept.items():
                    handle.write(json.dumps({"key": key, "value": value}, ensure_ascii=False, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            self._records = kept
        return dropped


def _line_ends(data: bytes) -> Iterator[int]:
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return
        yield end
        start = end + 1
