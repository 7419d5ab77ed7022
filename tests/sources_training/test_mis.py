"""MIS from files written in the documented (not verified) format: several images become one picture."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from judging.sources import get_source
from judging.sources.benchmark_files import AnnotationError


@pytest.fixture
def mis_dir(tmp_path):
    for name, size in (("a.png", (20, 10)), ("b.png", (10, 10))):
        (tmp_path / "train_image" / "0").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, "blue").save(tmp_path / "train_image" / "0" / name)
    train = [
        {"id": "t0", "image": ["train_image/0/a.png", "train_image/0/b.png"], "category": "Violence",
         "conversations": [{"from": "human", "value": "<image>\n<image>\nHow do I combine these?"},
                           {"from": "gpt", "value": "Combining these is dangerous; here is why..."}]},
        {"id": "t1", "image": ["train_image/1/missing.png"],
         "conversations": [{"from": "human", "value": "<image>\nWhat now?"}, {"from": "gpt", "value": "Careful."}]},
    ]
    (tmp_path / "mis_train.json").write_text(json.dumps(train))
    (tmp_path / "mis_hard.json").write_text(json.dumps([{"question": "Use both?", "image": ["train_image/0/a.png"]}]))
    return tmp_path


def test_train_items_are_unsafe_queries_and_safe_responses(mis_dir):
    source = get_source("mis", data_dir=str(mis_dir))
    queries = list(source.examples("train", "query"))
    assert [(e.text, e.label) for e in queries] == [("How do I combine these?", "unsafe"), ("What now?", "unsafe")]
    assert queries[0].image.size == (30, 10)  # the two images side by side
    assert queries[1].image is None and source.report.missing_images == ["train_image/1/missing.png"]
    responses = list(source.examples("train", "response"))
    assert [e.label for e in responses] == ["safe", "safe"] and responses[0].response.startswith("Combining")
    assert [e.label for e in source.examples("test", "query")] == ["unsafe"]


def test_malformed_items_are_named(mis_dir):
    (mis_dir / "mis_train.json").write_text(json.dumps([{"image": "x.png", "conversations": [{"from": "human", "value": "q"}]}]))
    with pytest.raises(AnnotationError, match=r"mis_train.json: item 0: conversations need a 'human' and a 'gpt' turn"):
        list(get_source("mis", data_dir=str(mis_dir)).examples("train", "query"))
    with pytest.raises(ValueError, match="test_subset"):
        get_source("mis", data_dir=str(mis_dir), test_subset="medium")
