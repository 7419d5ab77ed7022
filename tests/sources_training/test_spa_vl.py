"""SPA-VL: the harm test split from the real excerpt; the train split from the card's parquet layout."""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter

import datasets
import pytest
from PIL import Image

from judging.sources import get_source
from judging.sources.benchmark_files import AnnotationError


def test_harm_excerpt_is_all_unsafe_with_missing_images_listed(shared_dir, a_photo, tmp_path):
    items = json.loads((shared_dir / "benchmarks" / "SPA-VL" / "spa_vl_harm_sample.json").read_text())
    source = get_source("spa_vl")
    examples = list(source.examples("test", "query"))
    assert len(examples) == len(items) == 10
    assert Counter(e.label for e in examples) == {"unsafe": 10}
    assert [e.category for e in examples] == [item["class1"] for item in items.values()]
    assert source.report.missing_images == [item["image"] for item in items.values()]

    shutil.copy(a_photo, tmp_path / "0.png")
    source = get_source("spa_vl", image_root=str(tmp_path))
    examples = list(source.examples("test", "query"))
    assert examples[0].image == str(tmp_path / "0.png") and source.report.n_missing_images == 9


def _png(color):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


@pytest.fixture
def spa_vl_copy(tmp_path):
    """A local copy of the Hub layout (data/train-*.parquet) with the dataset card's columns."""
    features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                  "chosen": datasets.Value("string"), "rejected": datasets.Value("string"),
                                  "image_name": datasets.Value("string")})
    rows = [{"image": _png("red"), "question": f"q{i}", "chosen": f"safe answer {i}", "rejected": f"bad answer {i}",
             "image_name": f"img{i}.jpg"} for i in range(3)]
    (tmp_path / "data").mkdir()
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(tmp_path / "data" / "train-00000-of-00001.parquet"))
    return tmp_path


def test_train_preferences_become_safe_and_unsafe_responses(spa_vl_copy):
    examples = list(get_source("spa_vl", data_dir=str(spa_vl_copy)).examples("train", "response"))
    assert Counter(e.label for e in examples) == {"safe": 3, "unsafe": 3}
    assert {(e.response, e.label) for e in examples if e.text == "q0"} == {("safe answer 0", "safe"),
                                                                          ("bad answer 0", "unsafe")}
    queries = list(get_source("spa_vl", data_dir=str(spa_vl_copy)).examples("train", "query"))
    assert [e.label for e in queries] == ["unsafe"] * 3 and queries[0].image.size == (8, 8)


def test_train_without_data_or_with_wrong_columns_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="needs data_dir"):
        list(get_source("spa_vl").examples("train", "query"))
    (tmp_path / "data").mkdir()
    datasets.Dataset.from_list([{"question": "q"}]).to_parquet(str(tmp_path / "data" / "train-00000-of-00001.parquet"))
    with pytest.raises(AnnotationError, match=r"lacks column\(s\) \['image', 'chosen', 'rejected'\]"):
        list(get_source("spa_vl", data_dir=str(tmp_path)).examples("train", "query"))
