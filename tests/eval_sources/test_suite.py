"""The default benchmark suite file names real sources and tasks, and every entry loads on the shared files."""

import pytest

from eval.benchmarks import load_suite
from judging.sources import get_source


def test_every_suite_entry_yields_examples_from_the_shared_annotations():
    entries = load_suite()
    assert {entry["name"] for entry in entries} >= {"siuo", "figstep", "vlsbench", "salad", "mssbench", "vlsu"}
    for entry in entries:
        source = get_source(entry["name"], **entry.get("options", {}))
        examples = list(source.examples(entry.get("split", "test"), entry.get("task", "query")))
        assert examples and source.report.n_examples == len(examples)


def test_a_typo_in_the_suite_fails_before_anything_is_read(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text("benchmarks:\n  - {name: siou, task: query}\n")
    with pytest.raises(ValueError, match=r"benchmarks\[0\]: unknown benchmark 'siou'; known sources: .*siuo"):
        load_suite(path)
    path.write_text("benchmarks:\n  - {name: vlsbench, task: response}\n")
    with pytest.raises(ValueError, match=r"vlsbench has no task 'response'"):
        load_suite(path)
    path.write_text("benchmarks:\n  - {name: salad, tsak: query}\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['tsak'\]"):
        load_suite(path)


def test_check_command_prints_counts_and_missing_images(tmp_path, capsys, raw):
    from eval.benchmarks import main

    first = raw["json"]("SaLAD", "data.json")[0]["image"]
    (tmp_path / first).write_bytes(b"not checked for pixels here")
    assert main(["--benchmark", "salad", "--option", f"image_root={tmp_path}", "--show-missing", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| salad | query | 20 | 10 | 10 | 1 | 19 | - |"
    assert lines[3].strip().startswith("missing: ") and lines[3].strip() != f"missing: {first}"


def test_check_command_reports_exclusions_and_fails_on_an_unreadable_entry(tmp_path, capsys):
    from eval.benchmarks import main

    path = tmp_path / "suite.yaml"
    path.write_text("benchmarks:\n  - {name: vlsu, task: query}\n  - {name: mm_safetybench, task: query}\n")
    assert main(["--suite", str(path)]) == 1
    captured = capsys.readouterr()
    assert "| vlsu | query | 13 | 5 | 8 | 0 | 13 | borderline 8 |" in captured.out
    assert "ERROR mm_safetybench (query): mm_safetybench: no annotation file" in captured.err
