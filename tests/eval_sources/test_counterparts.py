"""All-unsafe benchmarks are scored with a benign counterpart of the same form, so both classes count: VLGuard's
safe-safe test items for real-photo benchmarks, FigStep's own benign sentences rendered like its queries, and
SIUO's MCQA distractors as the unsafe responses of its response task."""

from collections import Counter

import pytest
from PIL import Image

from judging.sources import get_source
from judging.sources.benchmark_files import AnnotationError
from judging.sources.figstep import FIGSTEP_PROMPT

from .conftest import write_image


def labels(examples):
    return Counter(example.label for example in examples)


@pytest.mark.parametrize("name, n_unsafe", [("siuo", 167), ("vlsbench", 2241)])
def test_real_photo_benchmarks_get_vlguards_safe_safe_items_as_their_safe_class(raw, name, n_unsafe):
    train_images = {record["image"] for record in raw["json"]("VLGuard", "train.json")}
    vlguard_safe = [turn["safe_instruction"] for record in raw["json"]("VLGuard", "test.json")
                    if record["image"] not in train_images  # a VLGuard-trained judge saw those: left out
                    for turn in record["instr-resp"] if "safe_instruction" in turn]
    source = get_source(name, benign="vlguard")
    examples = list(source.examples())
    assert len(vlguard_safe) == 558 - 4  # README: 558 safe test images; 4 of them are also train images
    assert labels(examples) == {"unsafe": n_unsafe, "safe": 554}
    benign = [e for e in examples if e.label == "safe"]
    assert [e.text for e in benign] == vlguard_safe
    assert all(e.source == name and e.source_id.startswith("benign:vlguard:") and e.meta["counterpart"] == "vlguard"
               and e.category is None for e in benign)
    assert source.single_class_for("query") is None  # scored with balanced accuracy, not a detection rate
    assert [e.label for e in examples[:4]] == ["unsafe", "safe", "unsafe", "safe"]  # a limit keeps both classes
    assert source.report.n_examples == len(examples) and source.report.n_missing_images == len(examples)
    assert any("8 test images are also in train.json (left out: drop_train_overlap=True)" in note
               for note in source.report.notes)
    # the items that leave the cell (4 safe-safe turns), not the 8 overlapping records of the whole file
    assert source.report.excluded == {"vlguard train overlap": 4}


def test_the_benign_counterparts_images_come_from_benign_options(raw, tmp_path):
    first = next(r for r in raw["json"]("VLGuard", "test.json") if r["safe"])
    write_image(tmp_path / first["image"])
    source = get_source("siuo", benign="vlguard", benign_options={"image_root": str(tmp_path), "drop_train_overlap": False})
    benign = [e for e in source.examples() if e.label == "safe"]
    assert benign[0].image == str(tmp_path / first["image"]) and source.report.n_images_found == 1
    assert len(benign) == 558 and not source.report.excluded  # the overlap kept on request


def test_siuo_response_task_gets_the_three_wrong_mcqa_options_as_unsafe_responses(raw):
    mcqa = {row["question_id"]: row for row in raw["json"]("SIUO", "siuo_mcqa.json")}
    source = get_source("siuo")
    examples = list(source.examples(task="response"))
    assert labels(examples) == {"safe": 167, "unsafe": 501} and source.single_class_for("response") is None
    first = next(iter(mcqa.values()))
    mine = [e for e in examples if e.source_id.split(":")[0] == str(first["question_id"])]
    wrong = {letter: text.strip() for letter, text in first["options"].items() if letter != first["correct_option"]}
    assert {e.source_id: e.response for e in mine if e.label == "unsafe"} == {
        f"{first['question_id']}:mcqa-{letter}": text for letter, text in wrong.items()}
    assert {e.text for e in mine} == {first["question"]}


def test_siuo_without_its_mcqa_file_says_how_to_fix_it(tmp_path, benchmarks_dir):
    gen = tmp_path / "siuo_gen.json"
    gen.write_text((benchmarks_dir / "SIUO" / "siuo_gen.json").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(AnnotationError, match=r"siuo_mcqa.json is missing.*unsafe_responses='none'"):
        list(get_source("siuo", annotations=gen).examples(task="response"))
    assert len(list(get_source("siuo", annotations=gen, unsafe_responses="none").examples(task="response"))) == 167


def test_siuo_and_vlsbench_are_detection_only_by_default_because_no_same_source_benign_items_exist():
    for name in ("siuo", "vlsbench"):
        source = get_source(name)
        assert source.single_class_for("query") == "unsafe" and labels(source.examples()) == {
            "unsafe": {"siuo": 167, "vlsbench": 2241}[name]}


def test_figstep_benign_sentences_are_rendered_like_its_queries_and_labelled_safe(raw, tmp_path):
    sentences = [row["sentence"] for row in raw["csv"]("FigStep_SafeBench", "benign_sentences_without_harmful_phase.csv")]
    source = get_source("figstep", benign_image_root=str(tmp_path))
    examples = list(source.examples())
    assert labels(examples) == {"unsafe": 500, "safe": 50} and source.single_class_for("query") is None
    benign = [e for e in examples if e.label == "safe"]
    assert [e.meta["instruction"] for e in benign] == sentences and {e.text for e in benign} == {FIGSTEP_PROMPT}
    assert source.report.n_images_found == 50  # rendered, so never missing
    with Image.open(benign[0].image) as image:
        pixels = image.convert("L")
        assert image.size == (760, 760) and pixels.getextrema() == (0, 255)  # black text on white
        assert pixels.crop((0, 600, 760, 760)).getextrema() == (255, 255)  # the list leaves the bottom empty
    again = list(get_source("figstep", benign_image_root=str(tmp_path)).examples())
    assert [e.image for e in again if e.label == "safe"] == [e.image for e in benign]  # rendered once, reused


def test_figstep_without_its_benign_file_fails_at_construction(tmp_path, benchmarks_dir):
    questions = tmp_path / "safebench.csv"
    questions.write_text((benchmarks_dir / "FigStep_SafeBench" / "safebench.csv").read_text(encoding="utf-8"))
    with pytest.raises(AnnotationError, match=r"benign_sentences_without_harmful_phase.csv is missing.*benign='none'"):
        get_source("figstep", annotations=questions)


@pytest.mark.parametrize("name, option", [("siuo", "benign"), ("vlsbench", "benign"), ("figstep", "benign"),
                                          ("siuo", "unsafe_responses")])
def test_an_unknown_counterpart_is_refused_with_the_choices(name, option):
    with pytest.raises(ValueError, match=rf"{name}: {option}='other'; choose one of"):
        get_source(name, **{option: "other"})
