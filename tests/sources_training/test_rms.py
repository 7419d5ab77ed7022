"""The `rms` source reads a release: pairs are unsafe queries, safe twins safe ones, responses by config."""

from __future__ import annotations

import shutil
from collections import Counter

import pyarrow.parquet as pq
import pytest

import rms_dataset as rms
from judging.sources import get_source
from judging.sources.rms import ReleaseError


def _parquet_rows(release, config, split):
    return pq.read_table(release / config / rms.shard_name(split, 0, 1)).to_pylist()


@pytest.mark.parametrize("split", ["train", "test"])
def test_query_examples_are_pairs_plus_safe_twins(curated_release, split):
    pairs = _parquet_rows(curated_release, rms.PAIRS, split)
    twins = sum(1 for row in pairs if (row["safe_twin_text"] or "").strip())
    examples = list(get_source("rms", release=str(curated_release)).examples(split, "query"))
    assert Counter(e.label for e in examples) == {"unsafe": len(pairs), "safe": twins}
    by_id = {e.source_id: e for e in examples}
    first = pairs[0]
    assert by_id[first["id"]].text == first["text"] and by_id[first["id"]].category == first["risk_category"]
    twin = by_id[f"{first['id']}:twin"]
    assert twin.text == first["safe_twin_text"] and twin.label == "safe"
    assert twin.image == by_id[first["id"]].image  # the same photo (its stored bytes) as the unsafe query


def test_response_examples_take_their_label_from_the_config(curated_release):
    safe = _parquet_rows(curated_release, rms.SAFE_RESPONSES, "train")
    unsafe = _parquet_rows(curated_release, rms.UNSAFE_RESPONSES, "train")
    examples = list(get_source("rms", release=str(curated_release)).examples("train", "response"))
    assert Counter(e.label for e in examples) == {"safe": len(safe), "unsafe": len(unsafe)}
    assert all(e.response and e.task == "response" for e in examples)


def test_a_response_row_with_the_wrong_label_is_named(curated_release, tmp_path):
    import datasets

    broken = tmp_path / "broken"
    shutil.copytree(curated_release, broken)
    shard = broken / rms.SAFE_RESPONSES / rms.shard_name("train", 0, 1)
    rows = pq.read_table(shard).to_pylist()
    rows[1]["label"] = "unsafe"
    datasets.Dataset.from_list(rows, features=rms.FEATURES[rms.SAFE_RESPONSES]).to_parquet(str(shard))
    with pytest.raises(ReleaseError, match=r"safe_responses/train row 1 .*label is 'unsafe', expected 'safe'"):
        list(get_source("rms", release=str(broken)).examples("train", "response"))


def test_unknown_split_and_bad_release_are_clear_errors(curated_release, tmp_path):
    with pytest.raises(ReleaseError, match="has no split 'validation'"):
        list(get_source("rms", release=str(curated_release)).examples("validation", "query"))
    with pytest.raises(ReleaseError, match="neither a directory nor a Hub dataset id"):
        get_source("rms", release=str(tmp_path / "nowhere"))
    with pytest.raises(ReleaseError, match="revision"):
        get_source("rms", release=str(curated_release), revision="v1")


def test_the_report_counts_examples_like_the_benchmark_sources(curated_release):
    source = get_source("rms", release=str(curated_release))
    examples = list(source.examples("test", "query"))
    assert source.report.n_examples == source.report.n_images_found == len(examples)
    assert source.report.missing_images == []
