"""Step 8b: deterministic split by image: the hash of the image id picks the split, so an image and all its
pairs land in exactly one split, and adding images never moves old ones."""

from __future__ import annotations

import hashlib


def split_for(image_id: str, fractions: dict[str, float]) -> str:
    """`fractions` e.g. {"train": 0.8, "test": 0.2} (normalised; order fixed by sorting names)."""
    if not fractions or any(value < 0 for value in fractions.values()) or sum(fractions.values()) <= 0:
        raise ValueError(f"splits must map split names to non-negative fractions with a positive sum, got {fractions}")
    point = int(hashlib.sha256(f"split:{image_id}".encode()).hexdigest()[:12], 16) / 16**12
    total = sum(fractions.values())
    cumulative = 0.0
    names = sorted(fractions)
    for name in names:
        cumulative += fractions[name] / total
        if point < cumulative:
            return name
    return names[-1]


def shard_of(key: str, shards: int) -> int:
    """The shard (0..shards-1) an input belongs to, by hash of its content key."""
    return int(hashlib.sha256(f"shard:{key}".encode()).hexdigest()[:12], 16) % shards
