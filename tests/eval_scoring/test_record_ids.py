"""Benchmarks without ids get ids from their content: a sample and the full file agree on every shared item.

Observed before: MSSBench and MIS ids came from the record's index, so the first record of a sample and the
first record of the full file had the same id whatever they held."""

from __future__ import annotations

import json

from judging.sources.registry import get_source


def _ids(source, split="test") -> dict[str, str]:
    return {example.source_id: example.text for example in source.examples(split)}


def test_mssbench_ids_do_not_depend_on_where_a_record_sits(tmp_path, shared_dir):
    sample_path = shared_dir / "benchmarks" / "MSSBench" / "combined_sample.json"
    sample = json.loads(sample_path.read_text())
    full = {"chat": [{**sample["chat"][0], "queries": ["A different question about the scene?"],
                      "safe_image_path": "other_safe.jpg", "unsafe_image_path": "other_unsafe.jpg"}, *sample["chat"]],
            "embodied": [{**sample["embodied"][0], "safe": "x_safe.png", "unsafe": "x_unsafe.png",
                          "safe_instruction": "Open the window.", "unsafe_instruction": "Open the oven."},
                         *sample["embodied"]]}
    full_path = tmp_path / "combined.json"
    full_path.write_text(json.dumps(full))
    for paraphrases in (False, True):
        in_sample = _ids(get_source("mssbench", annotations=str(sample_path), paraphrases=paraphrases))
        in_full = _ids(get_source("mssbench", annotations=str(full_path), paraphrases=paraphrases))
        assert all(in_full.get(source_id) == text for source_id, text in in_sample.items())
        assert len(in_full) == len(in_sample) + (4 if not paraphrases else 2 + 2 * len(
            sample["embodied"][0]["safe_instructions"]))


def test_mis_items_without_an_id_get_one_from_question_and_images(tmp_path):
    rows = [{"question": "How do I use these together?", "image": ["a/1.jpg", "a/2.jpg"]},
            {"question": "What happens if I mix them?", "image": ["b/1.jpg", "b/2.jpg"]}]
    sample_dir, full_dir = tmp_path / "sample", tmp_path / "full"
    for folder, content in ((sample_dir, rows[1:]), (full_dir, rows)):
        folder.mkdir()
        (folder / "mis_hard.json").write_text(json.dumps(content))
    in_sample = _ids(get_source("mis", data_dir=str(sample_dir)))
    in_full = _ids(get_source("mis", data_dir=str(full_dir)))
    assert len(in_full) == 2 and set(in_sample) < set(in_full)
    assert in_full[next(iter(in_sample))] == "What happens if I mix them?"
    (full_dir / "mis_hard.json").write_text(json.dumps([{**rows[0], "id": 7}]))
    assert list(_ids(get_source("mis", data_dir=str(full_dir)))) == ["7"]  # a published id is kept
