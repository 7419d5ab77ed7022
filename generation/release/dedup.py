"""Near-duplicate search, indexed: queries by word-shingle Jaccard (step 8a) and photos by dHash distance
(ingest, merge). Both give exactly the decisions of comparing every pair, in near-linear time.

Queries: texts are lower-cased, stripped of punctuation and whitespace-collapsed; two queries are
duplicates when their normalised forms are equal or the Jaccard similarity of their word 3-shingles (for
very short texts: their word sets) is >= `threshold`. The first text in the given order wins. Candidates
come from an inverted index over shingle *prefixes* (prefix filtering, Chaudhuri et al. 2006, as in
set-similarity joins): order every shingle by how rare it is; a set of n shingles is indexed under its first
n - ceil(threshold * n) + 1. Two sets with Jaccard >= threshold share at least ceil(threshold * n) shingles
for both their sizes n, so the rarest shingle they share lies in both prefixes: every duplicate is a
candidate (recall 1), and each candidate is verified with the exact Jaccard (precision 1).

Photos: `PhotoIndex` finds the first kept 64-bit hash within `distance` bits (multi-index hashing, Norouzi
et al. 2012): each hash is cut into distance + 1 chunks; two hashes that differ in at most `distance` bits
agree on at least one chunk (pigeonhole), so looking up each chunk finds every candidate, verified by the
exact Hamming distance.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable


def normalise_query(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def shingles(text: str, size: int = 3) -> frozenset[str]:
    words = normalise_query(text).split()
    if len(words) < size:
        return frozenset(words)
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def prefix_length(size: int, threshold: float) -> int:
    """How many of a set's rarest elements to index so that every set of Jaccard >= `threshold` with it shares
    one of them: size - ceil(threshold * size) + 1 (the float product rounded down a hair: longer is safe)."""
    overlap = max(1, math.ceil(threshold * size - 1e-9))
    return max(1, size - overlap + 1)


def find_duplicates(texts: list[tuple[str, str]], threshold: float = 0.7) -> dict[str, str]:
    """`texts` = [(key, text)] in priority order. Returns {duplicate key: key of the kept text it repeats}
    (the first kept text, in priority order, that it repeats)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    items = [(key, normalise_query(text), shingles(text)) for key, text in texts]
    rarity = Counter(gram for _, _, grams in items for gram in grams)
    exact: dict[str, str] = {}
    kept: list[tuple[str, frozenset]] = []
    index: dict[str, list[int]] = defaultdict(list)  # shingle -> positions in `kept` whose prefix holds it
    duplicates: dict[str, str] = {}
    for key, normal, grams in items:
        if normal in exact:
            duplicates[key] = exact[normal]
            continue
        ordered = sorted(grams, key=lambda gram: (rarity[gram], gram))
        prefix = ordered[: prefix_length(len(ordered), threshold)] if ordered else ()
        candidates = sorted({position for gram in prefix for position in index.get(gram, ())})
        match = next((kept[p][0] for p in candidates if jaccard(grams, kept[p][1]) >= threshold), None)
        if match is not None:
            duplicates[key] = match
            continue
        exact[normal] = key
        for gram in prefix:
            index[gram].append(len(kept))
        kept.append((key, grams))
    return duplicates


class PhotoIndex:
    """64-bit perceptual hashes kept so far, each with its owner (what a reject names), in insertion order.
    `first_within(h)`: the owner of the earliest kept hash within `distance` bits of `h`, or None."""

    BITS = 64

    def __init__(self, distance: int, entries: Iterable[tuple[int, str]] = ()):
        if not 0 <= distance <= self.BITS:
            raise ValueError(f"distance must be in 0..{self.BITS}, got {distance}")
        self.distance = distance
        chunks = distance + 1
        if chunks <= self.BITS:
            bounds = [round(i * self.BITS / chunks) for i in range(chunks + 1)]
            self.chunks = [(low, (1 << (high - low)) - 1) for low, high in zip(bounds, bounds[1:])]
        else:  # 64 bits apart at most: every hash is within the distance of every other
            self.chunks = []
        self.tables: list[dict[int, list[int]]] = [defaultdict(list) for _ in self.chunks]
        self.hashes: list[int] = []
        self.owners: list[str] = []
        for fingerprint, owner in entries:
            self.add(fingerprint, owner)

    def __len__(self) -> int:
        return len(self.hashes)

    def add(self, fingerprint: int, owner: str) -> None:
        position = len(self.hashes)
        self.hashes.append(fingerprint)
        self.owners.append(owner)
        for table, (shift, mask) in zip(self.tables, self.chunks):
            table[(fingerprint >> shift) & mask].append(position)

    def first_within(self, fingerprint: int, *, unless: str | None = None) -> str | None:
        """The earliest kept owner (other than `unless`) whose hash differs from `fingerprint` in at most
        `distance` bits."""
        if not self.chunks:
            return next((owner for owner in self.owners if owner != unless), None)
        candidates = set()
        for table, (shift, mask) in zip(self.tables, self.chunks):
            candidates.update(table.get((fingerprint >> shift) & mask, ()))
        for position in sorted(candidates):
            if (self.hashes[position] ^ fingerprint).bit_count() <= self.distance and self.owners[position] != unless:
                return self.owners[position]
        return None
