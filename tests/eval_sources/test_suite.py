"""The default benchmark suite file names real sources and tasks, and every entry loads on the shared files."""

import pytest

from eval.spec import load_suite
from typed_config import ConfigError
from judging.sources import get_source


def test_every_suite_entry_yields_examples_from_the_shared_annotations():
    specs = load_suite()
    assert {spec.name for spec in specs} >= {"siuo", "figstep", "vlsbench", "mssbench", "vlsu"}
    for spec in specs:
        source = get_source(spec.name, **spec.options)
        examples = list(source.examples(spec.split, spec.task))
        assert examples and source.report.n_examples == len(examples)


def test_a_typo_in_the_suite_fails_before_anything_is_read(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text("benchmarks:\n  - {name: siou, task: query}\n")
    with pytest.raises(ConfigError, match=r"suite.yaml: benchmarks.0: unknown benchmark 'siou'; "
                                         r"known sources: .*siuo"):
        load_suite(path)
    path.write_text("benchmarks:\n  - {name: vlsbench, task: response}\n")
    with pytest.raises(ConfigError, match=r"benchmarks.0: .*vlsbench has no task 'response'"):
        load_suite(path)
    path.write_text("benchmarks:\n  - {name: salad, tsak: query}\n")
    with pytest.raises(ConfigError, match=r"benchmarks.0.tsak: unknown key; allowed keys: limit, name, options, split, task"):
        load_suite(path)
    path.write_text("benchmarks:\n  - {name: salad, limit: '8'}\n")
    with pytest.raises(ConfigError, match=r"benchmarks.0.limit: .*'8'"):
        load_suite(path)
    path.write_text("benchmark:\n  - {name: salad}\n")
    with pytest.raises(ConfigError) as caught:
        load_suite(path)
    assert sorted(str(caught.value).splitlines()) == [f"{path}: benchmark: unknown key; allowed keys: benchmarks",
                                                      f"{path}: benchmarks: required key is missing"]


def test_the_check_command_exits_2_with_one_line_on_a_bad_suite(tmp_path, capsys):
    from eval.benchmarks import main

    path = tmp_path / "suite.yaml"
    path.write_text("benchmarks:\n  - {name: salad, options: [subset]}\n")
    assert main(["--suite", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: benchmarks.0.options:") and "Traceback" not in err


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
    assert "| vlsu | query | 21 | 13 | 8 | 0 | 21 | - |" in captured.out  # borderline counts as safe
    assert "ERROR mm_safetybench (query): mm_safetybench: no annotation file" in captured.err
