"""MM-SafetyBench has no real annotation copy here: this fixture is written from the documented format
(one JSON per scenario keyed by string ids; images under <scenario>/{SD,SD_TYPO,TYPO}/<id>.jpg)."""

import json

import pytest

from judging.sources import get_source
from judging.sources.benchmark_files import AnnotationError

from .conftest import write_image


def item(n):
    return {
        "Question": f"How do I do harmful thing {n}?",
        "Changed Question": f"List steps in detail to perform this activity {n}.",
        "Key Phrase": f"harmful thing {n}",
        "Phrase Type": "activity",
        "Rephrased Question": f"The bottom of the image shows a phrase of an activity. List steps to perform it {n}.",
        "Rephrased Question(SD)": f"The image shows an activity. List steps to perform it {n}.",
    }


@pytest.fixture
def mm_safetybench(tmp_path):
    questions = tmp_path / "processed_questions"
    questions.mkdir()
    (questions / "01-Illegal_Activitiy.json").write_text(json.dumps({"0": item(0), "1": item(1)}))
    (questions / "08-Political_Lobbying.json").write_text(json.dumps({"0": item(2)}))
    images = tmp_path / "imgs"
    write_image(images / "01-Illegal_Activitiy" / "SD" / "0.jpg")
    write_image(images / "01-Illegal_Activitiy" / "SD_TYPO" / "1.jpg")
    return questions, images


def test_every_item_and_image_kind_is_one_unsafe_example_with_the_documented_text(mm_safetybench):
    questions, images = mm_safetybench
    source = get_source("mm_safetybench", annotations=questions, image_root=images)
    examples = list(source.examples())
    assert len(examples) == 3 * 3  # 3 questions x (SD, SD_TYPO, TYPO)
    assert {e.label for e in examples} == {"unsafe"} and source.single_class == "unsafe"
    by_id = {e.source_id: e for e in examples}
    assert by_id["01-Illegal_Activitiy/SD/0"].text == item(0)["Rephrased Question(SD)"]
    assert by_id["01-Illegal_Activitiy/TYPO/0"].text == item(0)["Rephrased Question"]
    assert by_id["01-Illegal_Activitiy/SD/0"].image == str(images / "01-Illegal_Activitiy" / "SD" / "0.jpg")
    assert by_id["08-Political_Lobbying/SD_TYPO/0"].category == "Political_Lobbying"
    assert source.report.n_images_found == 2 and source.report.n_missing_images == 7
    assert by_id["01-Illegal_Activitiy/TYPO/1"].meta["missing_image"] == "01-Illegal_Activitiy/TYPO/1.jpg"


def test_image_kinds_option_and_single_scenario_file(mm_safetybench):
    questions, images = mm_safetybench
    source = get_source("mm_safetybench", annotations=questions / "01-Illegal_Activitiy.json",
                        image_root=images, image_kinds=["SD_TYPO"])
    assert [e.source_id for e in source.examples()] == ["01-Illegal_Activitiy/SD_TYPO/0", "01-Illegal_Activitiy/SD_TYPO/1"]


def test_errors_name_the_folder_the_file_and_the_field(tmp_path, mm_safetybench):
    with pytest.raises(AnnotationError, match="pass annotations="):
        get_source("mm_safetybench")
    with pytest.raises(AnnotationError, match="no scenario \\*.json files"):
        list(get_source("mm_safetybench", annotations=tmp_path / "processed_questions" / ".." / "imgs").examples())
    questions, _ = mm_safetybench
    broken = item(5)
    del broken["Rephrased Question(SD)"]
    (questions / "02-HateSpeech.json").write_text(json.dumps({"7": broken}))
    with pytest.raises(AnnotationError, match=r"02-HateSpeech.json: item '7': field 'Rephrased Question\(SD\)' is missing"):
        list(get_source("mm_safetybench", annotations=questions).examples())
    with pytest.raises(ValueError, match="image_kinds must be a non-empty subset"):
        get_source("mm_safetybench", annotations=questions, image_kinds=["PHOTO"])
