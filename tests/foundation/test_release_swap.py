"""Replacing a release survives a SIGKILL at any point: the release directory is never left missing or
half-written where the filesystem can swap atomically, and whatever an interrupted write left behind is
repaired and cleaned by the next write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pytest

import rms_dataset as rms
from generation.release.validate import validate_release
from generation.release.write import recover_release, write_release

REPO_ROOT = Path(__file__).resolve().parents[2]

# Writes version 2.0.0 over TARGET and SIGKILLs itself at the point named by MODE.
WRITER = textwrap.dedent("""
    import os, signal, sys
    import datasets
    import rms_dataset as rms
    import generation.release.write as release

    source, target, mode = sys.argv[1:4]
    rows = {c: {s: list(d) for s, d in datasets.load_dataset(source, c).cast_column("image", datasets.Image(decode=False)).items()}
            for c in rms.SOURCE_CONFIGS}

    def die(*_):
        os.kill(os.getpid(), signal.SIGKILL)

    real_replace, real_exchange = os.replace, release._exchange
    if mode == "while-writing":
        release.render_card = die
    elif mode == "between-renames":  # a filesystem without RENAME_EXCHANGE: the old release is moved aside first
        release._exchange = lambda a, b: False
        def replace(a, b):
            if os.fspath(b) == target and ".new-" in os.fspath(a):
                die()
            return real_replace(a, b)
        os.replace = replace
    elif mode == "after-exchange":
        def exchange(a, b):
            assert real_exchange(a, b), "this filesystem cannot exchange"
            die()
        release._exchange = exchange
    release.write_release(target, rows, overwrite=True, version="2.0.0", pretty_name="RMS test")
""")


def rows_of(release: Path) -> dict:
    return {config: {split: list(ds) for split, ds in datasets.load_dataset(str(release), config).cast_column(
        "image", datasets.Image(decode=False)).items()} for config in rms.SOURCE_CONFIGS}


def version_of(release: Path) -> str:
    return json.loads((release / "release.json").read_text())["version"]


def leftovers(target: Path) -> list[str]:
    return sorted(path.name for path in target.parent.iterdir() if path.name.startswith(f".{target.name}."))


@pytest.fixture
def old_release(small_release, tmp_path) -> Path:
    return write_release(tmp_path / "release", rows_of(small_release), version="1.0.0", pretty_name="RMS test")


def killed_writer(small_release: Path, target: Path, mode: str) -> None:
    result = subprocess.run([sys.executable, "-c", WRITER, str(small_release), str(target), mode], cwd=REPO_ROOT,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]


def test_a_kill_while_writing_keeps_the_old_release_and_the_next_write_cleans_up(small_release, old_release):
    killed_writer(small_release, old_release, "while-writing")
    assert version_of(old_release) == "1.0.0" and validate_release(str(old_release)) == []
    [staging] = leftovers(old_release)
    assert staging.startswith(".release.tmp-")
    write_release(old_release, rows_of(small_release), overwrite=True, version="3.0.0", pretty_name="RMS test")
    assert version_of(old_release) == "3.0.0" and leftovers(old_release) == []


def test_with_an_atomic_exchange_a_kill_never_leaves_the_release_missing(small_release, old_release):
    killed_writer(small_release, old_release, "after-exchange")
    assert version_of(old_release) == "2.0.0" and validate_release(str(old_release)) == []
    assert [name.split("-")[0] for name in leftovers(old_release)] == [".release.new"]  # now holding the old one
    done = recover_release(old_release)
    assert leftovers(old_release) == [] and len(done) == 1 and version_of(old_release) == "2.0.0"


def test_a_kill_between_the_two_renames_is_repaired_on_the_next_run(small_release, old_release, caplog):
    killed_writer(small_release, old_release, "between-renames")
    assert not old_release.exists()  # the window a filesystem without RENAME_EXCHANGE has
    assert sorted(name.split("-")[0] for name in leftovers(old_release)) == [".release.new", ".release.old"]
    done = recover_release(old_release)
    assert version_of(old_release) == "2.0.0" and validate_release(str(old_release)) == []  # the complete new one
    assert leftovers(old_release) == [] and "restored the complete new release" in done[0]
    assert "restored the complete new release" in caplog.text  # said (logged as a warning), not silent


def test_only_a_moved_aside_release_is_put_back_when_no_new_one_is_complete(small_release, old_release):
    aside = old_release.with_name(f".release.old-{2**22 + 12345}-x")  # a writer that no longer runs
    os.replace(old_release, aside)
    (old_release.parent / ".release.tmp-abc123").mkdir()  # an incomplete release (old naming): never promoted
    recover_release(old_release)
    assert version_of(old_release) == "1.0.0" and leftovers(old_release) == []


def test_the_leftovers_of_a_writer_still_running_are_left_alone(old_release):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = old_release.parent / f".release.tmp-{sleeper.pid}-abc"
        busy.mkdir()
        assert recover_release(old_release) == [] and busy.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
    recover_release(old_release)
    assert leftovers(old_release) == []
