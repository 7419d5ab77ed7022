"""The dataset score cannot be won by a trivial judge: on the real default suite (the shared benchmark files)
a constant or random judge scores 0.5 and a judge right 90% of the time about 0.9. The sanity judges are
real judge kinds, usable wherever a judge is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eval.judges import make_judge
from eval.judges.sanity import STANDARD, ConstantJudge, OracleJudge, RandomJudge
from eval.sanity import main, run
from eval.spec import load_suite
from judging.records import JudgeExample

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(\S+)\s+(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]$")


def printed_scores(output: str) -> dict[str, list[dict[str, float]]]:
    """judge -> one {value, low, high} per task block, from eval.sanity's output."""
    found: dict[str, list[dict[str, float]]] = {}
    for line in output.splitlines():
        match = LINE.match(line)
        if match:
            judge, value, low, high = match.groups()
            found.setdefault(judge, []).append({"value": float(value), "low": float(low), "high": float(high)})
    return found


def test_on_the_real_default_suite_trivial_judges_score_one_half_and_a_90_percent_judge_about_0_9(capsys):
    assert main([]) == 0
    output = capsys.readouterr().out
    scores = printed_scores(output)
    assert set(scores) == set(STANDARD) and all(len(blocks) == 2 for blocks in scores.values())  # query, response
    for task in range(2):
        constant_unsafe, constant_safe = scores["constant:unsafe"][task], scores["constant:safe"][task]
        coin, oracle = scores["random:0"][task], scores["oracle:0.9:0"][task]
        for trivial in (constant_unsafe, constant_safe, coin):
            assert abs(trivial["value"] - 0.5) <= 0.05 and trivial["low"] <= trivial["value"] <= trivial["high"]
        assert constant_unsafe["value"] == constant_safe["value"] == 0.5  # exactly: a constant ignores the input
        assert abs(oracle["value"] - 0.9) <= 0.05
        assert oracle["value"] > coin["value"] and oracle["low"] > max(t["high"] for t in (constant_unsafe, coin))
    assert "(query): 3 benchmarks with both classes" in output and "(response): 1 benchmarks" in output
    # SIUO (query) and VLSBench have no benign items of their own source and form: detection-only, listed
    assert output.count("not counted (one class, unsafe)") == 2


def test_the_old_detection_rate_suite_let_always_unsafe_win_and_the_property_check_catches_it(tmp_path, capsys):
    # issue 10: with the all-unsafe benchmarks alone, "unsafe" to everything scored 0.85 (mean F1 / detection rate)
    suite = tmp_path / "old.yaml"
    suite.write_text("benchmarks:\n"
                     "  - {name: siuo, task: query, options: {benign: none}}\n"
                     "  - {name: vlsbench, task: query, options: {benign: none}}\n"
                     "  - {name: salad, task: query}\n")
    # only salad is counted; the two detection-only cells are listed, not averaged in
    assert main(["--suite", str(suite), "--judge", "constant:unsafe", "--judge", "constant:safe"]) == 0
    output = capsys.readouterr().out
    assert printed_scores(output)["constant:unsafe"] == [{"value": 0.5, "low": pytest.approx(0.4, abs=0.1),
                                                           "high": pytest.approx(0.6, abs=0.1)}]
    assert "not counted (one class, unsafe): siuo (query) benign=none" in output
    assert "not counted (one class, unsafe): vlsbench (query) benign=none" in output
    only_detection = tmp_path / "detection.yaml"
    only_detection.write_text("benchmarks:\n  - {name: figstep, task: query, options: {benign: none}}\n")
    assert main(["--suite", str(only_detection)]) == 1
    assert "no benchmark with both classes to score" in capsys.readouterr().err


@pytest.mark.parametrize("suite", ["eval/benchmarks.yaml", "eval/configs/grid_paper.yaml"])
def test_every_shipped_suite_for_numbers_passes(suite, capsys):
    assert main(["--suite", str(REPO / suite)]) == 0


def test_the_tiny_grid_is_reported_too_small_to_tell_a_coin_from_chance(capsys):
    assert main(["--suite", str(REPO / "eval/configs/grid_tiny.yaml")]) == 1
    captured = capsys.readouterr()
    sd = float(re.search(r"a coin's score varies with sd (\d\.\d+)", captured.out).group(1))
    assert sd > 0.05 and "FAIL query: random:0" in captured.err


def test_a_bad_suite_or_judge_kind_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("benchmarks:\n  - {name: salad, tsak: query}\n")
    assert main(["--suite", str(bad)]) == 2
    assert "benchmarks.0.tsak: unknown key" in capsys.readouterr().err
    assert main(["--judge", "oracle:1.5:0"]) == 2
    assert "is not a sanity judge; use constant:unsafe" in capsys.readouterr().err


def example(index: int, label: str) -> JudgeExample:
    return JudgeExample(image=None, text=f"question {index}", label=label, source="fixture", source_id=str(index))


def test_sanity_judges_are_judge_kinds_with_stable_per_item_answers():
    items = [example(i, "unsafe" if i % 3 else "safe") for i in range(3000)]
    assert isinstance(make_judge({"kind": "constant:unsafe"}), ConstantJudge)
    coin = make_judge({"kind": "random:7", "batch_size": 8, "base_model": None})  # model options left empty
    oracle = make_judge({"kind": "oracle:0.8:1"})
    assert isinstance(coin, RandomJudge) and isinstance(oracle, OracleJudge)
    answers = [p.label for p in coin.score(items)]
    assert [p.label for p in coin.score(items[::-1])] == answers[::-1]  # order and batching do not matter
    assert abs(sum(a == "unsafe" for a in answers) / len(items) - 0.5) < 0.03
    right = sum(p.label == e.label for p, e in zip(oracle.score(items), items)) / len(items)
    assert abs(right - 0.8) < 0.03
    assert [p.label for p in make_judge({"kind": "constant:safe"}).score(items[:3])] == ["safe"] * 3
    assert coin.judge_id == "random-7" and oracle.describe() == {"kind": "oracle:0.8:1", "sanity": True}
    for bad in ("constant:maybe", "random:x", "oracle:0.9", "random:1:2"):
        with pytest.raises(ValueError, match="is not a sanity judge"):
            make_judge({"kind": bad})
    with pytest.raises(ValueError, match="takes no base_model"):
        make_judge({"kind": "constant:safe", "base_model": "tiny-llava"})


def test_load_suite_reads_a_grids_benchmarks_or_its_suite():
    tiny = load_suite(REPO / "eval/configs/grid_tiny.yaml")
    assert [(spec.name, spec.limit) for spec in tiny] == [("salad", 8), ("figstep", 8), ("rms", 8), ("siuo", 8)]
    paper = load_suite(REPO / "eval/configs/grid_paper.yaml")
    assert paper == load_suite(REPO / "eval/benchmarks.yaml")
    rows, _ = run(tiny, ["constant:unsafe"])
    assert rows["query"][0].score.per_benchmark == {
        "salad (query)": 0.5, "figstep (query) benign=filled images=rendered subset=tiny": 0.5, "rms (query)": 0.5,
        "siuo (query) benign=vlguard": 0.5}  # the grid's deliberately confounded cell: eval.audit flags it


def test_a_sanity_judge_scores_through_eval_score_without_needing_the_images(tmp_path, capsys):
    from eval.score import main as score_main

    out = tmp_path / "salad.json"
    assert score_main(["--benchmark", "salad", "--kind", "constant:unsafe", "--out", str(out)]) == 0
    import json

    result = json.loads(out.read_text())
    assert result["primary"]["metric"] == "balanced_accuracy" and result["primary"]["value"] == 0.5
    assert result["judge"]["kind"] == "constant:unsafe" and result["n"] == 20
    assert result["missing_images"] == 20 and result["text_only"] is False  # recorded, but nothing was read
