"""A rerun that changes nothing skips the whole run (run_stamp.RunStamp): no input is read, no checkpoint
replayed, the release and gallery stay as written. Anything that could change the outcome takes the
normal path: the inputs, the config, the code, the weights a backend serves, an output edited or deleted,
--retry-errors."""

from __future__ import annotations

import pytest

from generation.engine import executor, run_stamp
from generation.engine.stamps import listing
from generation.run import run
from modelcalls.scripted_backend import ScriptedBackend
from tests.generation_pipeline.conftest import jpeg_bytes


@pytest.fixture
def done_run(photo_folder, make_config, tmp_path):
    """A finished run: (config, its folder, its run directory, its report)."""
    folder = photo_folder(["a cliff", "a stove", "a pool"])
    config = make_config(folder)
    report = run(config, tmp_path / "run", show_progress=False)
    assert "unchanged" not in report
    return config, folder, tmp_path / "run", report


def test_an_unchanged_rerun_reads_no_input_and_rewrites_nothing(done_run, monkeypatch):
    config, _, out, first = done_run
    outputs = [out / "release", out / "gallery.html", out / "gallery", out / "shard", out / "images"]
    written = listing(outputs)
    monkeypatch.setattr(executor.Executor, "_ingest", lambda *args: pytest.fail("the executor replayed the run"))
    again = run(config, out, show_progress=False)
    assert again["unchanged"] and again["usage"]["model_calls"] == again["usage"]["cached_calls"] == 0
    assert again["funnel"] == first["funnel"] and again["release"] == first["release"]
    assert listing(outputs) == written


def test_new_weights_under_the_same_model_name_are_not_skipped(done_run, monkeypatch):
    config, _, out, _ = done_run

    async def identify(self):
        return {"revision": "f" * 40} if self.model == "fake-verifier" else None

    monkeypatch.setattr(ScriptedBackend, "identify", identify, raising=False)
    again = run(config, out, show_progress=False)
    assert "unchanged" not in again and again["usage"]["model_calls"] > 0  # the verifier's steps asked again


def test_a_changed_config_is_not_skipped(done_run, make_config):
    _, folder, out, _ = done_run
    assert "unchanged" not in run(make_config(folder, seed=7), out, show_progress=False)


def test_changed_code_is_not_skipped(done_run, monkeypatch):
    config, _, out, _ = done_run
    monkeypatch.setattr(run_stamp, "code_version", lambda: "edited code")
    assert "unchanged" not in run(config, out, show_progress=False)


@pytest.mark.parametrize("change", ["added", "rewritten", "removed"])
def test_changed_inputs_are_not_skipped(done_run, change):
    config, folder, out, _ = done_run
    photo = sorted(folder.glob("*.jpg"))[0]
    if change == "added":
        (folder / "new.jpg").write_bytes(jpeg_bytes())
    elif change == "rewritten":  # same size, mtime set back: the ctime still tells
        stat = photo.stat()
        data = bytearray(photo.read_bytes())
        data[-3] ^= 1
        photo.write_bytes(bytes(data))
        import os

        os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    else:
        photo.unlink()
    assert "unchanged" not in run(config, out, show_progress=False)


@pytest.mark.parametrize("edit", ["a release file edited", "checksums.sha256 edited", "the release deleted",
                                  "a photo deleted", "the gallery deleted"])
def test_outputs_changed_since_the_run_are_written_again(done_run, edit):
    config, _, out, first = done_run
    release = out / "release"
    if edit == "a release file edited":
        (release / "README.md").write_text((release / "README.md").read_text() + "\nmy note\n")
    elif edit == "checksums.sha256 edited":
        (release / "checksums.sha256").write_text("")
    elif edit == "the release deleted":
        import shutil

        shutil.rmtree(release)
    elif edit == "a photo deleted":
        next((out / "images").glob("*.jpg")).unlink()
    else:
        (out / "gallery.html").unlink()
    again = run(config, out, show_progress=False)
    assert "unchanged" not in again and again["problems"] == [] and again["pairs"] == first["pairs"]
    assert (out / "gallery.html").is_file() and "my note" not in (release / "README.md").read_text()
    assert run(config, out, show_progress=False)["unchanged"]  # and the run after that is skipped again


def test_retry_errors_is_never_skipped(done_run):
    config, _, out, _ = done_run
    assert "unchanged" not in run(config, out, show_progress=False, retry_errors=True)


def test_a_changed_base_release_is_not_skipped(done_run, tmp_path):
    import os
    import shutil
    from pathlib import Path

    config, _, out, _ = done_run
    base = shutil.copytree(Path(__file__).resolve().parents[2] / "sample_release", tmp_path / "base")
    assert "unchanged" not in run(config, out, base_release=str(base), show_progress=False)
    assert run(config, out, base_release=str(base), show_progress=False)["unchanged"]
    card = base / "README.md"
    os.utime(card, ns=(card.stat().st_atime_ns, card.stat().st_mtime_ns + 10**9))  # touched: it may have changed
    assert "unchanged" not in run(config, out, base_release=str(base), show_progress=False)
