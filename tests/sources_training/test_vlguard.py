"""VLGuard on the real published train.json / test.json (labels from turns; `safe` is about the image)."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from judging.sources import get_source
from judging.sources.benchmark_files import AnnotationError


def _published(shared_dir, split):
    return json.loads((shared_dir / "benchmarks" / "VLGuard" / f"{split}.json").read_text())


@pytest.mark.parametrize("split", ["train", "test"])
def test_query_labels_follow_the_turns(shared_dir, split):
    records = _published(shared_dir, split)
    safe_images = sum(1 for r in records if r["safe"])
    unsafe_images = len(records) - safe_images
    examples = list(get_source("vlguard").examples(split, "query"))
    # a safe image gives one safe and one unsafe query, an unsafe image one unsafe query
    assert Counter(e.label for e in examples) == {"safe": safe_images, "unsafe": safe_images + unsafe_images}
    expected = {"train": {"safe": 977, "unsafe": 2000}, "test": {"safe": 558, "unsafe": 1000}}[split]
    assert Counter(e.label for e in examples) == expected
    first_safe = next(r for r in records if r["safe"])
    mine = [e for e in examples if e.source_id.startswith(first_safe["id"] + ":")]
    assert {(e.label, e.text) for e in mine} == {
        ("safe", first_safe["instr-resp"][0]["safe_instruction"]),
        ("unsafe", first_safe["instr-resp"][1]["unsafe_instruction"]),
    }


def test_response_task_is_single_class_safe_and_reports_empty_responses(shared_dir):
    source = get_source("vlguard")
    examples = list(source.examples("test", "response"))
    turns = [t for r in _published(shared_dir, "test") for t in r["instr-resp"]]
    empty = sum(1 for t in turns if not t["response"].strip())
    assert empty > 0 and len(examples) == len(turns) - empty
    assert source.report.excluded == {"empty response": empty}
    assert {e.label for e in examples} == {"safe"} and source.single_class_for("response") == "safe"


def test_missing_images_are_listed_and_found_ones_resolved(shared_dir, a_photo, tmp_path):
    records = _published(shared_dir, "train")
    source = get_source("vlguard")
    examples = list(source.examples("train", "query"))
    assert all(e.image is None for e in examples) and len(source.report.missing_images) == len(examples)
    assert examples[0].meta["missing_image"] == records[0]["image"]

    target = tmp_path / "train" / records[0]["image"]  # the Hub zip extracts under train/
    target.parent.mkdir(parents=True)
    shutil.copy(a_photo, target)
    source = get_source("vlguard", image_root=str(tmp_path))
    examples = list(source.examples("train", "query"))
    assert examples[0].image == str(target)
    assert source.report.n_images_found == len(records[0]["instr-resp"])
    assert source.report.n_missing_images == len(examples) - source.report.n_images_found


def test_a_malformed_record_is_named(tmp_path):
    record = {"id": "x1", "image": "a.png", "safe": True,
              "instr-resp": [{"instruction": "hi", "response": "hello"}]}
    (tmp_path / "train.json").write_text(json.dumps([record]))
    with pytest.raises(AnnotationError, match=r"train.json: record 0 \(id=x1\) turn 0: expected one of"):
        list(get_source("vlguard", annotations=str(tmp_path)).examples("train", "query"))
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        list(get_source("vlguard").examples("dev", "query"))


def test_hub_images_come_from_the_split_zip_extracted_once(shared_dir, a_photo, tmp_path, monkeypatch):
    """The Hub path downloads <split>.zip (here: a local zip standing in for hf_hub_download's cached file)."""
    import zipfile

    import huggingface_hub

    records = _published(shared_dir, "test")
    archive = tmp_path / "cache" / "test.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(a_photo, f"test/{records[0]['image']}")
    calls = []

    def fake_download(repo_id, filename, repo_type, revision):
        calls.append((repo_id, filename, repo_type, revision))
        return str(archive)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    source = get_source("vlguard", hub_dataset="ys-zong/VLGuard", revision="abc123")
    first = next(iter(source.examples("test", "query")))
    assert first.image == str(archive.parent / "test_extracted" / "test" / records[0]["image"])
    list(source.examples("test", "query"))
    assert calls == [("ys-zong/VLGuard", "test.zip", "dataset", "abc123")] * 2
    assert (archive.parent / "test_extracted" / ".complete").exists()


def test_the_published_duplicate_id_is_reported_and_every_example_id_is_unique(shared_dir):
    records = _published(shared_dir, "train")
    assert [r["id"] for r in records].count("Ads_303871") == 2  # the published file, not our reading of it
    source = get_source("vlguard")
    examples = list(source.examples("train", "query"))
    ids = [e.source_id for e in examples]
    assert len(ids) == len(set(ids))  # before: two examples were both 'Ads_303871:safe_instruction'
    assert {"Ads_303871:safe_instruction", "Ads_303871#2:safe_instruction"} <= set(ids)
    assert any("id Ads_303871 appears 2 times with different content" in note for note in source.report.notes)
    assert "note: train.json: id Ads_303871" in source.report.summary()


def test_the_train_test_image_overlap_is_reported_and_can_be_dropped_from_test(shared_dir):
    train_images = {r["image"]: r["safe"] for r in _published(shared_dir, "train")}
    test = _published(shared_dir, "test")
    overlap = [r for r in test if r["image"] in train_images]
    flipped = [r["image"] for r in overlap if r["safe"] != train_images[r["image"]]]
    assert len(overlap) == 8 and flipped == ["harm-p/memes_3364.png"]

    kept = get_source("vlguard")
    examples = list(kept.examples("test", "query"))
    assert kept.report.notes == [f"8 test images are also in train.json (kept; pass drop_train_overlap=True when "
                                 f"the judge trained on VLGuard); 1 with a different safe label there: {flipped[0]}"]
    dropped = get_source("vlguard", drop_train_overlap=True)
    remaining = list(dropped.examples("test", "query"))
    n_turns = sum(len(r["instr-resp"]) for r in overlap)
    assert len(remaining) == len(examples) - n_turns and dropped.report.excluded == {"train overlap": 8}
    assert not {e.meta.get("missing_image") for e in remaining} & {r["image"] for r in overlap}
    assert list(dropped.examples("train", "query"))  # the train split is never filtered
    assert not dropped.report.excluded
    with pytest.raises(ValueError, match="drop_train_overlap must be true or false"):
        get_source("vlguard", drop_train_overlap="yes")
