"""Change single bytes inside a written parquet shard, the way a bad disk or a hand edit would: the file
still reads, but a value in one row is different."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def _flip_where_it_changes(path: Path, needle: bytes, offset: int, value: int, column: str) -> None:
    """Set byte `offset` of an occurrence of `needle` to `value`, choosing the occurrence that the reader
    decodes (the same bytes may also sit in statistics that no row reads)."""
    original = path.read_bytes()
    before = pq.read_table(path, columns=[column]).column(column).to_pylist()
    start = original.find(needle)
    while start >= 0:
        changed = bytearray(original)
        changed[start + offset] = value
        path.write_bytes(bytes(changed))
        try:
            if pq.read_table(path, columns=[column]).column(column).to_pylist() != before:
                return
        except Exception:  # this occurrence was structural: try the next one
            pass
        start = original.find(needle, start + 1)
    path.write_bytes(original)
    raise AssertionError(f"{needle!r} is not stored literally in {path}")


def tamper_text(path: Path, row: int) -> None:
    """Change the last character of row `row`'s `text` to '9'. Snappy stores repeated
    text by back-reference, so only a value whose bytes are stored literally (row 0's: the first value of
    its page) can be changed in place."""
    text = pq.read_table(path, columns=["text"]).column("text")[row].as_py()
    _flip_where_it_changes(path, text.encode(), len(text.encode()) - 1, ord("9"), "text")


def tamper_image(path: Path, row: int) -> None:
    """Change one byte in the middle of row `row`'s photo (compressed data is stored as is)."""
    data = pq.read_table(path, columns=["image"]).column("image")[row].as_py()["bytes"]
    middle = len(data) // 2
    needle = data[middle : middle + 64]
    _flip_where_it_changes(path, needle, 32, needle[32] ^ 0xFF, "image")
