"""The indexed near-duplicate searches against the all-pairs scans they replace, on real-looking items with
near duplicates planted (tests/generation_pipeline/scale_items.py): recall and precision of the indexed
decisions against the scan's, and the CPU time of each. Prints a markdown table.

  python bench/indexed_dedup.py [--items 10000] [--photos DIR]

Queries: `find_duplicates` at the shipped threshold (0.7). Photos: `PhotoIndex` at the shipped distance (4
bits), on the dHashes of --photos (the photos bench/generation_scale.py derives, when given) else on
generated hashes. Labels: `Taxonomy.build`. A decision is "this item repeats that kept one" (for labels:
"this label joins the category of that first alias"); recall = shared decisions / the scan's, precision =
shared decisions / the index's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generation.release.dedup import find_duplicates  # noqa: E402
from generation.release.taxonomy import Taxonomy  # noqa: E402
from generation.steps.ingest import IngestOptions  # noqa: E402
from tests.generation_pipeline.scale_items import (all_pairs_duplicates, all_pairs_first_within,  # noqa: E402
                                                    all_pairs_taxonomy, indexed_first_within, labels, photo_hashes,
                                                    queries)


def cpu(function, *args):
    start = time.process_time()
    result = function(*args)
    return result, time.process_time() - start


def photo_dhashes(folder: Path, count: int) -> list[tuple[int, str]]:
    from PIL import Image

    from generation.steps.ingest import dhash

    files = sorted(folder.glob("*.jpg"))[:count]
    hashes = []
    for path in files:
        image = Image.open(path)
        image.draft("RGB", (64, 64))  # dHash reads a 9x8 thumbnail: a reduced decode is enough
        hashes.append((dhash(image.convert("RGB")), path.name))
    return hashes


def merges(categories) -> set[tuple[str, str]]:
    """(label, first alias of its category) for every label merged into a category it did not open."""
    return {(alias, aliases[0]) for aliases in categories for alias in aliases[1:]}


def score(indexed: set, exact: set) -> tuple[float, float]:
    shared = len(indexed & exact)
    return (shared / len(exact) if exact else 1.0), (shared / len(indexed) if indexed else 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--photos", type=Path, default=None, help="a folder of photos to take dHashes of")
    args = parser.parse_args()
    rows = []

    texts = queries(args.items, seed=1)
    indexed, index_s = cpu(find_duplicates, texts, 0.7)
    exact, scan_s = cpu(all_pairs_duplicates, texts, 0.7)
    rows.append(("queries (Jaccard >= 0.7)", len(texts), len(exact), *score(set(indexed.items()), set(exact.items())), index_s, scan_s))

    distance = IngestOptions().near_duplicate_distance
    hashes = photo_dhashes(args.photos, args.items) if args.photos else photo_hashes(args.items, seed=1)
    source = f"dHash of {len(hashes)} derived photos" if args.photos else "generated hashes"
    found, index_s = cpu(indexed_first_within, hashes, distance)
    truth, scan_s = cpu(all_pairs_first_within, hashes, distance)
    pairs = lambda decisions: {(owner, near) for (_, owner), near in zip(hashes, decisions) if near is not None}  # noqa: E731
    rows.append((f"photos ({source}, <= {distance} bits)", len(hashes), len(pairs(truth)), *score(pairs(found), pairs(truth)),
                 index_s, scan_s))

    raw = labels(args.items, seed=1)
    built, index_s = cpu(Taxonomy.build, raw)
    scanned, scan_s = cpu(all_pairs_taxonomy, raw)
    ours = merges([sorted(c.aliases, key=lambda a: (-c.aliases[a], a)) for c in built.categories])
    theirs = merges([sorted(c, key=lambda a: (-c[a], a)) for c in scanned])
    rows.append(("risk labels (taxonomy)", len(raw), len(theirs), *score(ours, theirs), index_s, scan_s))

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; CPU seconds (process time)")
    print("| items | n | duplicates (scan) | recall | precision | indexed CPU s | all-pairs CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, n, duplicates, recall, precision, index_s, scan_s in rows:
        print(f"| {name} | {n:,} | {duplicates:,} | {recall:.4f} | {precision:.4f} | {index_s:.2f} | {scan_s:.1f} |")


if __name__ == "__main__":
    main()
