"""The closing report tells failed model calls from rejected answers: counts by cause, the first error
verbatim, the command that redoes the failed calls, and a non-zero exit when most calls failed."""

from __future__ import annotations

import yaml

from generation.__main__ import main
from modelcalls.scripted_backend import Fault
from tests.generation_pipeline import fake_model

KEY_ACCEPTED = {"now": False}  # flipped by a test: the user fixed the key (it lives outside the config)


def server(request):
    """The fake model behind a server that refuses the key until it is fixed."""
    return fake_model.respond(request) if KEY_ACCEPTED["now"] else Fault.bad_request(401)


def test_a_run_whose_calls_fail_says_so_names_the_error_and_the_retry_command(photo_folder, tmp_path, capsys,
                                                                             monkeypatch):
    role = {"backend": "scripted", "respond": f"{__name__}:server", "supports_images": False}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"input": {"kind": "folder", "path": str(photo_folder(["a cliff edge", "a stove"]))},
                                      "exemplars": None, "generator": {**role, "model": "g"},
                                      "verifier": {**role, "model": "v"}}))
    out = tmp_path / "run"
    command = ["run", str(config), "--out", str(out), "--no-progress"]
    retry = f"python -m generation run {config} --out {out} --retry-errors"

    assert main(command) == 1
    report = capsys.readouterr().out
    assert "model answers: 0 accepted, 0 rejected; failed calls: 2, HTTP 401 2" in report
    assert "MOST MODEL CALLS FAILED: their items were rejected as 'call failed', not for their answers. First error: " \
           "BackendError: HTTP 401 (scripted)" in report
    assert f"then redo only the failed calls: {retry}\n" in report
    assert "Model calls failed: see below." in report
    assert "A small model rarely writes answers" not in report  # the answers were never written

    monkeypatch.setitem(KEY_ACCEPTED, "now", True)
    assert main(command) == 1  # the failures are checkpointed: the report says so again, and how to redo them
    assert f"redo only the failed calls: {retry}" in capsys.readouterr().out
    assert main([*command, "--retry-errors"]) == 0
    report = capsys.readouterr().out
    assert "pairs: 2" in report and "failed calls: 0" in report and "FAILED" not in report


def test_the_funnel_is_listed_in_the_order_the_pipeline_defines():
    from generation.release.finalize import FINAL_ROW, format_funnel
    from generation.steps.pipeline import funnel_rows

    rows = [*funnel_rows(), FINAL_ROW]
    assert rows[:3] == ["ingest", "screen", "scene"] and rows.index("query") < rows.index("rewrite") < rows.index("check")
    shuffled = {row: [1, 1] for row in reversed(rows)}
    listed = [line.split()[0] for line in format_funnel({"funnel": shuffled}).splitlines()[1:]]
    assert listed == rows
