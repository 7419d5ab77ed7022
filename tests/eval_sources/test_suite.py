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
