"""Sharding: which slice of the input a run with `--shard I/N` processes (the split of a release by image
is `rms_dataset.split_for_image`, the one split function)."""

from __future__ import annotations

import hashlib


def shard_of(key: str, shards: int) -> int:
    """The shard (0..shards-1) an input belongs to, by hash of its content key."""
    return int(hashlib.sha256(f"shard:{key}".encode()).hexdigest()[:12], 16) % shards
