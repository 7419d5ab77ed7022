"""Step 8a: near-duplicate queries across the whole release (normalised text + word-shingle Jaccard).

Texts are lower-cased, stripped of punctuation and whitespace-collapsed; two queries are duplicates when
their normalised forms are equal or the Jaccard similarity of their word 3-shingles (for very short texts:
their word sets) is >= `threshold`. The first text in the given order wins. All-pairs comparison: fine
up to tens of thousands of queries; beyond that, swap in MinHash-LSH behind the same function.
"""

from __future__ import annotations

import re


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


def find_duplicates(texts: list[tuple[str, str]], threshold: float = 0.7) -> dict[str, str]:
    """`texts` = [(key, text)] in priority order. Returns {duplicate key: key of the kept text it repeats}."""
    kept: list[tuple[str, str, frozenset]] = []
    exact: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for key, text in texts:
        normal = normalise_query(text)
        if normal in exact:
            duplicates[key] = exact[normal]
            continue
        grams = shingles(text)
        match = next((owner for owner, _, other in kept if jaccard(grams, other) >= threshold), None)
        if match is not None:
            duplicates[key] = match
            continue
        exact[normal] = key
        kept.append((key, normal, grams))
    return duplicates
