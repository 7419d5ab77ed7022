"""The indexed near-duplicate searches (queries, photos, risk labels) make exactly the decisions of comparing
every pair: each is checked against a plain all-pairs scan on generated, real-looking items with many near
duplicates planted. (bench/indexed_dedup.py runs the same comparison on 10k items and times both.)"""

from __future__ import annotations

import random

import pytest

from generation.release.dedup import PhotoIndex, find_duplicates
from generation.release.taxonomy import Taxonomy, normalise_label
from tests.generation_pipeline.scale_items import (all_pairs_duplicates, all_pairs_first_within, all_pairs_taxonomy,
                                                    indexed_first_within, labels, photo_hashes, queries, similar)


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9, 1.0])
def test_indexed_query_dedup_equals_the_all_pairs_scan(threshold):
    texts = queries(1500, seed=threshold)
    indexed = find_duplicates(texts, threshold)
    assert indexed == all_pairs_duplicates(texts, threshold)
    assert len(indexed) > 50  # the sample does hold near duplicates


@pytest.mark.parametrize("distance", [0, 4, 10])
def test_indexed_photo_search_equals_the_all_pairs_scan(distance):
    hashes = photo_hashes(3000, seed=distance)
    decisions = indexed_first_within(hashes, distance)
    assert decisions == all_pairs_first_within(hashes, distance)
    assert sum(d is not None for d in decisions) > 50


def test_a_photo_index_at_distance_64_matches_everything_but_the_excluded_owner():
    index = PhotoIndex(64, [(0, "a"), ((1 << 64) - 1, "b")])
    assert index.first_within(12345) == "a" and index.first_within(12345, unless="a") == "b"


@pytest.mark.parametrize("string_similarity", [0.85, 0.6])
def test_indexed_taxonomy_equals_the_all_pairs_scan(string_similarity):
    raw = labels(400, seed=int(string_similarity * 100))
    built = Taxonomy.build(raw, string_similarity=string_similarity)
    assert [dict(sorted(c.aliases.items())) for c in built.categories] == all_pairs_taxonomy(raw, string_similarity)
    assert len(built.categories) < len({normalise_label(label) for label in raw}) / 2  # labels were merged


def test_online_taxonomy_files_each_label_where_the_scan_would():
    raw = labels(300, seed=7)
    online = Taxonomy([])
    categories: list[list[str]] = []
    for label in raw:
        normalised = normalise_label(label)
        home = next((c for c in categories if any(similar(normalised, a) for a in c)), None)
        if home is None:
            home = [normalised]
            categories.append(home)
        elif normalised not in home:
            home.append(normalised)
        assert online.add(label) == online.categories[categories.index(home)].name
    assert [sorted(c.aliases) for c in online.categories] == [sorted(c) for c in categories]
    probe = random.Random(1).sample(labels(400, seed=8), 50)
    for label in probe:  # canonical: the known alias's category, else the first similar one, else itself
        normalised = normalise_label(label)
        home = next((c for c in categories if normalised in c), None) or \
            next((c for c in categories if any(similar(normalised, a) for a in c)), None)
        expected = online.categories[categories.index(home)].name if home else normalised
        assert online.canonical(label) == expected
