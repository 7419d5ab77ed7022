"""bench/gpu_suite.py cannot rot: its smoke mode runs every section on the CPU with tiny dimensions.

The smoke run is the same code as the GPU run (random-init Qwen2.5-VL, the recipe's data path on the sample
release, trl's SFTTrainer, the plain baseline loop, every lever, recipes.train.train with merge, the eval
judge's three scoring paths); only the dimensions are tiny and the parts that need CUDA say so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "bench" / "gpu_suite.py"


def _suite_module():
    """bench/gpu_suite.py imported as a module (bench/ is no package)."""
    if "gpu_suite" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpu_suite"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["gpu_suite"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[dict, str, str]:
    out = tmp_path_factory.mktemp("gpu-suite")
    result = subprocess.run([sys.executable, str(SUITE), "--smoke", "--out", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text(), result.stdout


def test_smoke_mode_says_it_is_no_performance_figure(smoke):
    results, markdown, _ = smoke
    assert results["header"]["mode"].startswith("smoke (CPU, tiny dimensions")
    assert "not a performance figure" in markdown.splitlines()[0]


def test_recipe_baseline_and_every_lever_train_and_are_measured(smoke):
    results, _, _ = smoke
    rows = {row["variant"]: row for row in results["tables"]["training 3b"]}
    levers = [lever.name for lever in _suite_module().LEVERS]
    assert set(rows) == {"recipe", "baseline", *levers}
    for name, row in rows.items():
        assert "note" not in row or not str(row["note"]).startswith("error"), row
        assert row["tokens/s"] > 0 and row["samples/s"] > 0 and row["tokens/sample"] > 50, row
        assert row["measured x"] > 0
    assert rows["recipe"]["lever"].startswith("4-bit off (needs CUDA)")  # the CPU run says what it changed
    assert rows["baseline"]["batch"] == "1x4" and rows["recipe"]["batch"] == "2x2"  # same effective batch
    assert rows["no_checkpointing"]["predicted x"] == pytest.approx(1.5)
    target = results["tables"]["targets"][0]
    assert target["recipe/baseline tokens/s"] == pytest.approx(rows["recipe"]["tokens/s"] / rows["baseline"]["tokens/s"])


def test_cuda_only_parts_are_skipped_by_name_and_the_rest_pass(smoke):
    results, _, _ = smoke
    checks = {check["check"]: check for check in results["checks"]}
    assert checks["4-bit recipe trains 20 steps and its loss falls"] == {
        "check": "4-bit recipe trains 20 steps and its loss falls", "status": "skipped", "detail": "skipped: needs CUDA"}
    for name in ("recipe (4-bit off) trains 20 steps and its loss falls",
                 "adapter saves, reloads and changes the output", "--merge writes weights that load",
                 "fast path p_unsafe equals generate's first-step probability within 1e-3"):
        assert checks[name]["status"] == "pass", checks[name]
    training = {row["variant"]: row for row in results["tables"]["training 3b"]}
    assert training["recipe"]["peak GiB"] is None and training["recipe"]["MFU %"] is None  # no CUDA: no figure


def test_the_three_scoring_paths_score_the_same_items(smoke):
    results, _, _ = smoke
    rows = {row["path"]: row for row in results["tables"]["scoring 3b"]}
    assert set(rows) == {"fast (one forward)", "generate, per item", "generate, batched"}
    assert {row["items"] for row in rows.values()} == {4}
    assert all(row["items/s"] > 0 for row in rows.values())
    assert rows["generate, per item"]["batch"] == 1 and rows["generate, per item"]["x per-item generate"] == 1.0
    assert rows["generate, batched"]["agree (first step) %"] == 100.0
    target = results["tables"]["scoring targets"][0]
    assert target["fast / per-item generate items/s"] == pytest.approx(
        rows["fast (one forward)"]["items/s"] / rows["generate, per item"]["items/s"])
    assert target["same verdict as per-item generate (first step) %"] == rows["generate, per item"]["agree (first step) %"]


def test_the_markdown_has_one_table_per_section(smoke):
    _, markdown, stdout = smoke
    for title in ("### setup", "### training 3b", "### targets", "### scoring 3b", "### scoring targets",
                  "### checks"):
        assert title in markdown
    assert "| variant | lever | batch | steps | tokens/s | samples/s |" in markdown
    assert markdown.strip() in stdout  # the table is also printed at the end


def test_results_are_on_disk_after_every_row_so_a_timeout_keeps_them(tmp_path):
    suite = _suite_module()
    report = suite.Report(tmp_path, {"mode": "test"})
    report.row("training 3b", {"variant": "recipe", "tokens/s": 1234.5})
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["tables"]["training 3b"] == [{"variant": "recipe", "tokens/s": 1234.5}]
    report.check("x", "fail", "why")
    assert "- FAIL: x: why" in (tmp_path / "results.md").read_text()


def test_a_failing_measurement_becomes_an_error_row_and_the_suite_goes_on(tmp_path):
    suite = _suite_module()
    report = suite.Report(tmp_path, {"mode": "test"})

    def out_of_memory():
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    assert suite._guarded(report, "training 3b", "baseline", out_of_memory) is None
    row = json.loads((tmp_path / "results.json").read_text())["tables"]["training 3b"][0]
    assert row == {"variant": "baseline", "note": "error: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"}


def test_a_folder_that_is_no_release_is_a_usage_error(tmp_path):
    result = subprocess.run([sys.executable, str(SUITE), "--smoke", "--out", str(tmp_path / "o"), "--release",
                             str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert f"--release {tmp_path}: not an RMS release folder (no release.json)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_package_that_does_not_import_is_named_before_anything_runs(tmp_path):
    shadow = tmp_path / "site" / "trl"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('trl 9 needs transformers>=9')\n")
    result = subprocess.run([sys.executable, str(SUITE), "--smoke", "--out", str(tmp_path / "o")], cwd=REPO,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert result.returncode == 2
    assert "cannot import trl (ImportError: trl 9 needs transformers>=9)" in result.stderr
    assert "carry them as wheels" in result.stderr and not (tmp_path / "o").exists()
