"""Bad input gets an error naming the file, row and field (or the option to set), never a silent skip."""

import json

import pytest

from judging.sources import get_source
from judging.sources.benchmark_files import AnnotationError

BENCHMARKS = ("figstep", "mm_safetybench", "mssbench", "salad", "siuo", "vlsbench", "vlsu")


def test_unknown_benchmark_name_lists_the_known_ones():
    with pytest.raises(KeyError) as error:
        get_source("siuo2")
    assert all(name in str(error.value) for name in BENCHMARKS)


def test_missing_annotation_file_names_the_path_and_the_option(tmp_path):
    with pytest.raises(AnnotationError, match=r"annotations='.*nothing.json' does not exist; set the annotations option"):
        get_source("siuo", annotations=tmp_path / "nothing.json")


def test_annotation_folder_without_the_expected_file_names_it(tmp_path):
    with pytest.raises(AnnotationError, match=r"has no data.json"):
        get_source("vlsbench", annotations=tmp_path)


def test_missing_shared_copy_says_to_pass_annotations(monkeypatch, tmp_path):
    monkeypatch.setenv("RMS_SHARED", str(tmp_path))
    with pytest.raises(AnnotationError, match=r"siuo: no annotation file \(the shared copy .* is not there\); "
                                              r"pass annotations=<path to siuo_gen.json>"):
        get_source("siuo")


def test_malformed_json_row_names_file_item_and_field(tmp_path, raw):
    rows = raw["json"]("SIUO", "siuo_gen.json")[:3]
    del rows[2]["question"]
    path = tmp_path / "siuo_gen.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(AnnotationError, match=rf"{path}: item 2: field 'question' is missing"):
        list(get_source("siuo", annotations=path).examples())


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[{"query": "x",\n  oops}]')
    with pytest.raises(AnnotationError, match=rf"{path}: not valid JSON \(line 2"):
        list(get_source("salad", annotations=path).examples())


def test_salad_label_outside_safe_unsafe_is_an_error(tmp_path, raw):
    rows = raw["json"]("SaLAD", "data.json")[:2]
    rows[1]["safety type"] = "risky"
    path = tmp_path / "data.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(AnnotationError, match=r"item 1: field 'safety type' must be 'safe' or 'unsafe', got 'risky'"):
        list(get_source("salad", annotations=path).examples())


def test_csv_missing_column_and_bad_row_are_named(tmp_path, benchmarks_dir):
    text = (benchmarks_dir / "FigStep_SafeBench" / "SafeBench-Tiny.csv").read_text(encoding="utf-8").splitlines()
    no_column = tmp_path / "no_column.csv"
    no_column.write_text("\n".join(line.rsplit(",", 1)[0] for line in text[:3]) + "\n")
    with pytest.raises(AnnotationError, match=rf"{no_column}: missing column\(s\) \['instruction'\]"):
        list(get_source("figstep", annotations=no_column, benign="none").examples())
    bad_row = tmp_path / "bad_row.csv"
    bad_row.write_text("\n".join([text[0], text[1], text[2].replace("ForbidQI,1,2,", "ForbidQI,one,2,")]) + "\n")
    with pytest.raises(AnnotationError, match=rf"{bad_row}: line 3: field 'category_id' must be an integer, got 'one'"):
        list(get_source("figstep", annotations=bad_row, benign="none").examples())


def test_vlsu_unknown_grade_and_unknown_option_value_are_errors(tmp_path, benchmarks_dir):
    lines = (benchmarks_dir / "VLSU" / "VLSU_sample21.csv").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "VLSU.csv"
    path.write_text("\n".join([lines[0], lines[1].replace(",safe,unsafe,unsafe,", ",safe,unsafe,maybe,")]) + "\n")
    with pytest.raises(AnnotationError, match=rf"{path}: line 2: field 'consensus_combined_grade' .* got 'maybe'"):
        list(get_source("vlsu", annotations=tmp_path).examples())
    with pytest.raises(ValueError, match=r"vlsu: borderline='drop'; choose one of"):
        get_source("vlsu", borderline="drop")


def test_mssbench_record_with_a_bad_query_is_named(tmp_path, raw):
    data = raw["json"]("MSSBench", "combined_sample.json")
    data["chat"][3]["queries"][1] = ""
    path = tmp_path / "combined.json"
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"chat\[3\]: field 'queries'\[1\] must be a non-empty string"):
        list(get_source("mssbench", annotations=tmp_path).examples())


def test_unsupported_task_and_split_are_refused():
    with pytest.raises(ValueError, match=r"vlsbench: task 'response' is not supported; supported: \['query'\]"):
        list(get_source("vlsbench").examples(task="response"))
    with pytest.raises(ValueError, match=r"unknown split 'train'"):
        list(get_source("siuo").examples(split="train"))


def test_unknown_option_is_refused():
    with pytest.raises(TypeError, match="image_folder"):
        get_source("siuo", image_folder="x")
