"""Scoring a judge on a benchmark: result records, unparseable answers, and the errors users can hit."""

from __future__ import annotations

import json
import re

import pytest

from eval.judges.api import APIJudge, APIJudgeError
from eval.cell import evaluate
from eval.predictions import CACHE_FILE
from eval.results import RESULT_SCHEMA_VERSION, ResultSchemaError, read_result, write_result
from eval.spec import BenchmarkSpec, parse_specs
from typed_config import ConfigError

from .conftest import ChatServer, KeywordJudge


def test_binary_benchmark_result_has_f1_with_ci_and_provenance(tmp_path, binary_benchmark):
    spec = BenchmarkSpec(name="eval_fixture", options={"annotations": str(binary_benchmark)})
    result = evaluate(KeywordJudge(), spec, tmp_path / "predictions", n_bootstrap=200)
    assert result["schema_version"] == RESULT_SCHEMA_VERSION
    assert result["primary"]["metric"] == "balanced_accuracy"
    assert result["primary"]["value"] == pytest.approx(1.0)  # the keyword rule matches the fixture's labels
    low, high = result["primary"]["ci"]
    assert low <= 1.0 <= high + 1e-9
    assert result["benchmark"]["n_items"] == 8 and result["benchmark"]["n_by_label"] == {"safe": 4, "unsafe": 4}
    assert result["benchmark"]["annotations_sha256"]
    assert result["judge"]["kind"] == "keyword" and result["judge"]["id"].startswith("keyword-")
    assert set(result["metrics"]["per_category"]) == {"fire", "falls"}


def test_single_class_benchmark_is_scored_with_detection_rate(tmp_path, unsafe_only_benchmark):
    spec = BenchmarkSpec(name="eval_fixture_unsafe_only", options={"annotations": str(unsafe_only_benchmark)}, limit=6)
    result = evaluate(KeywordJudge(), spec, tmp_path, n_bootstrap=100)
    assert result["primary"]["metric"] == "detection_rate"
    assert result["primary"]["value"] == pytest.approx(3 / 6)  # 3 of the first 6 texts mention a risky word
    assert result["metrics"].get("f1") is None


def test_a_judge_whose_outputs_never_parse_is_counted_as_failures_not_a_silent_zero(tmp_path, binary_benchmark):
    spec = BenchmarkSpec(name="eval_fixture", options={"annotations": str(binary_benchmark)})
    result = evaluate(KeywordJudge(answer="I am not sure what you mean."), spec, tmp_path, n_bootstrap=50)
    assert result["unparseable"] == 8
    assert result["metrics"]["n_unparseable"] == 8 and result["metrics"]["unparseable_rate"] == 1.0
    assert result["metrics"]["accuracy"] == 0.0  # unparseable answers count as wrong, every one of them


def test_unknown_benchmark_names_the_known_ones():
    with pytest.raises(ConfigError, match="command line: benchmarks.0: unknown benchmark 'no_such_bench'; known sources: .*siuo"):
        parse_specs(["no_such_bench"], source="command line")


def test_result_of_another_schema_version_is_a_clear_error(tmp_path):
    path = write_result(tmp_path / "cell.json", {"schema_version": "0", "judge": {}, "benchmark": {},
                                                 "primary": {}, "metrics": {}})
    with pytest.raises(ResultSchemaError, match=rf"cell.json: result schema_version '0', this toolkit reads '{RESULT_SCHEMA_VERSION}'"):
        read_result(path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ResultSchemaError, match="broken.json: not valid JSON"):
        read_result(tmp_path / "broken.json")


# ------------------------------------------------------------------------------ API judge on a local server


def _user_text(body):
    return next(part["text"] for part in body["messages"][-1]["content"] if part["type"] == "text")


def test_api_judge_sends_the_judge_prompt_with_the_image_and_parses_answers(tmp_path, binary_benchmark):
    def answer(body):
        return "Unsafe: the stove." if "fire" in _user_text(body) else "This looks safe to me."

    with ChatServer(answer) as server:
        judge = APIJudge("judge-model", server.url, max_workers=2)
        spec = BenchmarkSpec(name="eval_fixture", options={"annotations": str(binary_benchmark)})
        result = evaluate(judge, spec, tmp_path, n_bootstrap=0)
    assert len(server.requests) == 8
    first = server.requests[0]
    assert first["model"] == "judge-model" and first["messages"][0]["role"] == "system"
    assert first["messages"][1]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert "Answer 'safe' or 'unsafe' first." in _user_text(first)
    assert result["unparseable"] == 0
    assert result["metrics"]["recall"] < 1.0  # only "fire" items are flagged: "lean"/"stove" ones are missed


def test_api_judge_id_names_the_weights_the_server_serves():
    """Other weights re-served under the same model name at the same URL are another judge: another id, so
    none of the old weights' predictions is reused; a server that says only the name keeps the plain id."""
    with ChatServer(lambda body: "safe", models=[{"id": "judge-model", "root": "/ckpt/step-500"}]) as server:
        before = APIJudge("judge-model", server.url)
        assert before.describe()["served"] == {"root": "/ckpt/step-500"}
        assert APIJudge("judge-model", server.url).judge_id == before.judge_id  # the same weights: the same id
        server.models = [{"id": "judge-model", "root": "/ckpt/step-900"}]
        after = APIJudge("judge-model", server.url)
        assert after.describe()["served"] == {"root": "/ckpt/step-900"} and after.judge_id != before.judge_id
        server.models = None
        assert "served" not in APIJudge("judge-model", server.url).describe()


def test_api_judge_unparseable_answers_are_counted_and_http_errors_name_the_item(tmp_path, binary_benchmark):
    spec = BenchmarkSpec(name="eval_fixture", options={"annotations": str(binary_benchmark)})
    with ChatServer(lambda body: "Let me think about it.") as server:
        result = evaluate(APIJudge("m", server.url), spec, tmp_path, n_bootstrap=0)
        assert result["unparseable"] == 8
        wrong_path = APIJudge("m", server.url.removesuffix("/v1"), retries=1)
        with pytest.raises(APIJudgeError, match=r"eval_fixture/item\d: judge call to .* failed \(.*HTTP 404"):
            wrong_path.score([spec_example(binary_benchmark)])


def spec_example(path):
    from eval.loading import load_benchmark

    return load_benchmark(BenchmarkSpec(name="eval_fixture", options={"annotations": str(path)}, limit=1)).examples[0]


def test_score_cli_writes_a_result_and_reuses_predictions(tmp_path, binary_benchmark, capsys):
    from eval.score import main

    out = tmp_path / "r" / "fixture.json"
    with ChatServer(lambda body: "unsafe" if "fire" in _user_text(body) else "safe") as server:
        argv = ["--benchmark", "eval_fixture", "--option", f"annotations={binary_benchmark}", "--limit", "6",
                "--kind", "api", "--api-model", "j", "--base-url", server.url, "--out", str(out), "--n-bootstrap", "20"]
        assert main(argv) == 0
        assert main(argv) == 0
        assert len(server.requests) == 6  # the second run read every prediction from the cache
    result = read_result(out)
    assert result["benchmark"]["n_items"] == 6 and result["benchmark"]["limit"] == 6
    assert (tmp_path / "r" / "predictions" / CACHE_FILE).is_file()  # the one call cache of the folder
    line = capsys.readouterr().out
    assert "balanced_accuracy = " in line and "n=6, missing images 0, unparseable 0 (generative)" in line


# ------------------------------------------------------------------------- no silent text-only; cell contract


def test_cell_records_the_contract_fields(tmp_path, binary_benchmark):
    spec = BenchmarkSpec(name="eval_fixture", options={"annotations": str(binary_benchmark)}, limit=6)
    result = evaluate(KeywordJudge(), spec, tmp_path, n_bootstrap=0)
    assert {key: result[key] for key in ("n", "missing_images", "text_only", "mode", "label_mass",
                                         "format_mismatch", "unparseable")} == {
        "n": 6, "missing_images": 0, "text_only": False, "mode": None, "label_mass": None,
        "format_mismatch": False, "unparseable": 0}
    assert result["options"] == {"annotations": str(binary_benchmark)} and result["key"] == spec.key


def test_missing_images_fail_by_default_naming_benchmark_count_and_where(tmp_path):
    """Observed: FigStep and MSSBench without their images were scored text-only without a word (MSSBench
    then gives exactly 0.5: both halves of a pair become the same text)."""
    from eval.loading import MissingImagesError

    with pytest.raises(MissingImagesError, match=r"figstep \(query\): 40 of 100 items have no image .*"
                                                 r"--option image_root=DIR.*--text-only"):
        evaluate(KeywordJudge(), BenchmarkSpec(name="figstep", options={"subset": "tiny"}), tmp_path)
    with pytest.raises(MissingImagesError, match=r"mssbench \(query\): 36 of 36 items have no image"):
        evaluate(KeywordJudge(), BenchmarkSpec(name="mssbench"), tmp_path)


def test_text_only_is_an_explicit_labelled_mode_with_its_own_key(tmp_path):
    from .conftest import SeesImageJudge

    judge = SeesImageJudge()
    spec = BenchmarkSpec(name="figstep", options={"subset": "tiny"}, text_only=True)
    result = evaluate(judge, spec, tmp_path, n_bootstrap=0)
    assert result["text_only"] is True and result["missing_images"] == 40 and result["n"] == 100
    assert result["key"].endswith("__text-only") and result["key"] != BenchmarkSpec(name="figstep", options={"subset": "tiny"}).key
    assert len(judge.scored) == 100 and result["metrics"]["recall"] == 0.0  # it was shown no image


def test_score_cli_refuses_missing_images_and_prints_text_only_cells(tmp_path, capsys):
    from eval.score import main

    with ChatServer(lambda body: "unsafe") as server:
        base = ["--benchmark", "mssbench", "--kind", "api", "--api-model", "j", "--base-url", server.url,
                "--n-bootstrap", "0"]
        assert main([*base, "--out", str(tmp_path / "a.json")]) == 2
        err = capsys.readouterr().err
        assert "mssbench (query): 36 of 36 items have no image" in err and "Traceback" not in err
        assert not server.requests  # nothing was scored
        assert main([*base, "--text-only", "--option", "paraphrases=false", "--out", str(tmp_path / "b.json")]) == 0
        out = capsys.readouterr().out
        assert "n=36, missing images 36" in out and "TEXT-ONLY" in out
        assert main([*base, "--text-only", "--option", "paraphrases=true", "--out", str(tmp_path / "c.json")]) == 0
        assert "n=52, missing images 52" in capsys.readouterr().out  # "false" was a truthy string before
    assert all(part["type"] == "text" for body in server.requests for part in body["messages"][1]["content"])


def test_options_are_yaml_scalars_in_every_cli():
    import argparse

    from eval.spec import parse_option

    assert parse_option("paraphrases=false") == ("paraphrases", False)
    assert parse_option("limit=3") == ("limit", 3)
    assert parse_option("settings=[chat]") == ("settings", ["chat"])
    assert parse_option("image_root=/data/a=b") == ("image_root", "/data/a=b")
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        parse_option("paraphrases")


def test_cell_keys_carry_options_split_limit_and_text_only():
    """Observed: figstep subset tiny vs the default, or two vlsu borderline settings, overwrote each other."""
    keys = {
        BenchmarkSpec(name="figstep").key, BenchmarkSpec(name="figstep", options={"subset": "tiny"}).key,
        BenchmarkSpec(name="vlsu", options={"borderline": "safe"}).key, BenchmarkSpec(name="vlsu", options={"borderline": "unsafe"}).key,
        BenchmarkSpec(name="figstep", options={"subset": "tiny"}, limit=8).key, BenchmarkSpec(name="figstep", text_only=True).key,
        BenchmarkSpec(name="figstep", split="train").key,
    }
    assert len(keys) == 7
    # the benign twins are rendered: the font file that rendered them is part of the key
    assert re.fullmatch(r"figstep__query__subset=tiny__font=FreeMonoBold\.[0-9a-f]{8}",
                        BenchmarkSpec(name="figstep", options={"subset": "tiny"}).key)
    assert BenchmarkSpec(name="vlsu", options={"image_root": "/data/vlsu"}).key == "vlsu__query"  # where images live is not a setting
    path_key = BenchmarkSpec(name="eval_fixture", options={"annotations": "/some/long/path/file.jsonl"}).key
    assert path_key.startswith("eval_fixture__query__annotations=") and "/" not in path_key


def test_a_callable_judge_is_a_kind_of_eval_score(tmp_path, binary_benchmark, capsys):
    from eval.score import main

    out = tmp_path / "rule.json"
    argv = ["--benchmark", "eval_fixture", "--option", f"annotations={binary_benchmark}", "--kind",
            "python:eval.judges.rules:harmful_keywords", "--out", str(out), "--n-bootstrap", "0"]
    assert main(argv) == 0
    result = read_result(out)
    assert result["judge"]["callable"] and result["judge"]["reference"] and result["n"] > 0
    assert main([*argv[:4], "--kind", "python:eval.judges.rules:no_such_rule", "--out", str(out)]) == 2
    assert "eval.judges.rules has no function 'no_such_rule'" in capsys.readouterr().err


def test_one_command_scores_several_benchmarks_with_one_judge(tmp_path, capsys, monkeypatch):
    import eval.judges as judges
    from eval.score import main

    built = []
    real = judges.make_judge
    monkeypatch.setattr(judges, "make_judge", lambda spec: built.append(spec) or real(spec))
    suite = tmp_path / "suite.yaml"
    suite.write_text("benchmarks:\n  - {name: mssbench, task: query}\n  - {name: vlsu, task: query, options: "
                     "{borderline: safe, not_sure: exclude}}\n  - {name: siuo, task: response}\n")
    argv = ["--suite", str(suite), "--kind", "random:0", "--out", str(tmp_path / "run"), "--n-bootstrap", "0"]
    assert main(argv) == 0 and len(built) == 1  # one judge (one model load) for every benchmark
    cells = sorted(path.name for path in (tmp_path / "run" / "cells").glob("*.json"))
    assert cells == ["mssbench__query.json", "siuo__response.json", "vlsu__query__borderline=safe__not_sure=exclude.json"]
    with pytest.raises(SystemExit) as usage:  # --benchmark, --benchmarks and --suite exclude each other
        main(["--benchmark", "vlsu", "--suite", str(suite), "--kind", "constant:safe", "--out", str(tmp_path / "x")])
    assert usage.value.code == 2
    capsys.readouterr()
    assert main(["--benchmarks", "vlsu,salad", "--kind", "constant:safe", "--out", str(tmp_path / "two"),
                 "--n-bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    assert "vlsu__query__borderline=safe__not_sure=exclude: balanced_accuracy" in printed and "salad__query:" in printed


def test_benchmarks_list_prints_the_registry_with_sizes_classes_and_images(capsys):
    from eval.score import main

    assert main(["--benchmarks", "list"]) == 0
    table = capsys.readouterr().out
    assert "| siuo | query, response | 167 | 167 / 0 | 0 of 167 |" in table
    assert "| mm_safetybench | query | not available here:" in table


def test_every_cell_has_a_samples_log_with_gold_verdict_prompt_hash_and_image(tmp_path, binary_benchmark):
    from eval.score import main

    out = tmp_path / "r.json"
    assert main(["--benchmark", "eval_fixture", "--option", f"annotations={binary_benchmark}", "--kind",
                 "oracle:0.9:0", "--out", str(out), "--n-bootstrap", "0"]) == 0
    result = read_result(out)
    lines = [json.loads(line) for line in (tmp_path / result["samples"]).read_text().splitlines()]
    assert result["samples"] == "r.samples.jsonl" and len(lines) == result["n"]
    first = lines[0]
    assert set(first) >= {"item_id", "benchmark", "gold", "verdict", "p_unsafe", "raw_output", "prompt_sha256", "image"}
    assert first["benchmark"] == result["key"] and len(first["prompt_sha256"]) == 64
    assert {line["gold"] for line in lines} == {"safe", "unsafe"}
    assert sum(line["gold"] == line["verdict"] for line in lines) == result["metrics"]["confusion"]["tp"] + \
        result["metrics"]["confusion"]["tn"]  # the log says what the cell counted
