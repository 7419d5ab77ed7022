"""The stamp of a whole run, so that a rerun that changes nothing skips the executor too (not only finalize
and the gallery, `stamps.py`): without it an unchanged rerun still reads and hashes every input, re-hashes
every kept photo and replays every checkpoint (~0.75 ms a photo).

The stamp is ``steps/run-<fingerprint>.json``. The fingerprint hashes, without reading a photo:

* the inputs: the manifest, every file it names and (``kind: folder``) every entry of the folder, each with
  its size, mtime_ns, ctime_ns and inode, and where a link points (a file rewritten in place changes its
  ctime even when its mtime is set back);
* the config (``RunConfig.to_dict``), the shard, the run directory, the exemplars file's listing;
* the code: every file of ``generation/`` and ``modelcalls/`` and the top-level modules of the repository,
  and the steps' parsing code (``fingerprint.code_digest``); the plan given (``--plan``);
* the base release: the listing of its directory;
* what each role's backend serves (``identify()``, as summary.json records it): asked on every run, so new
  weights under the same model name rerun.

It holds the run's report and the listing of what the run wrote (shard outcome, photos, thumbnails,
release or rejects file, gallery) plus the sha256 of the release's ``checksums.sha256``. The run is
skipped only when the stamp exists and every one of those files is still as written; anything else (a
changed input, config, code, weights, or an output deleted or edited) takes the normal path, which resumes
from the checkpoints as before.

No stamp is used (the normal path always runs) for an input of ``kind: dataset``, a base release that is a
Hub id (no cheap listing of either), or ``--retry-errors`` (it asks again for what failed).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from atomic_files import write_atomic

from generation.steps.ingest import listed_name, read_manifest

from . import fingerprint as fp
from .config import RunConfig, resolve_path
from .stamps import listing

CODE_FOLDERS = ("generation", "modelcalls")


def tree_listing(root: Path) -> list[list]:
    """`stat_row` of every file under `root` (a file: itself), sorted."""
    root = Path(root)
    if not root.exists():
        return []
    if not root.is_dir():
        return [stat_row(str(root.parent), root.name)]
    top = str(root)
    return sorted(stat_row(top, os.path.join(folder, name)[len(top) + 1:]) for folder, _, names in os.walk(top) for name in names)


def stat_row(root: str, name: str) -> list:
    """[name, size, mtime_ns, ctime_ns, inode, link target] of `root`/`name`, following a link as the ingest
    does (a file rewritten in place changes its ctime even when its mtime is set back); a missing file or a
    dangling link has None for all four."""
    path = os.path.join(root, name)
    try:
        stat = os.stat(path)
        numbers = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
    except OSError:
        numbers = [None] * 4
    return [name, *numbers, os.readlink(path) if os.path.islink(path) else ""]


def input_listing(config: RunConfig) -> list[list] | None:
    """`stat_row` of every file the run reads: the manifest, every file it names and (``kind: folder``) every
    entry of the folder; None for a dataset (no cheap listing)."""
    spec = config.resolved_input()
    if spec["kind"] == "folder":
        root = Path(spec["path"])
        manifest = root / spec.get("manifest", "MANIFEST.csv")
        names = {entry.name for entry in os.scandir(root)}
    elif spec["kind"] == "manifest":
        manifest = Path(spec["path"])
        root, names = manifest.parent, {manifest.name}
    else:
        return None
    if manifest.is_file():
        names.update(name for _, row in read_manifest(manifest) if (name := listed_name(row)))
    return [stat_row(str(root), name) for name in sorted(names)]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 of every file under ``CODE_FOLDERS`` (prompt templates included) and of the repository's
    top-level modules: any edit to the code a run executes."""
    digest = hashlib.sha256()
    root = fp.PACKAGE_ROOT
    files = [p for folder in CODE_FOLDERS for p in (root / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in sorted(files + list(root.glob("*.py"))):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class RunStamp:
    """The stamp of one run of `config` into `out` (see the module docstring); `None` from `for_run` where
    no stamp is used."""

    def __init__(self, out: Path, payload: dict[str, Any]):
        self.out, self.payload = Path(out), payload

    @classmethod
    def for_run(cls, config: RunConfig, out: str | Path, shard: tuple[int, int], base_release: str | None,
                retry_errors: bool, determined_by: list) -> RunStamp | None:
        inputs = input_listing(config)
        if inputs is None or retry_errors or (base_release and not Path(base_release).is_dir()):
            return None
        out = Path(out)
        exemplars = resolve_path(config.exemplars) if config.exemplars else None
        return cls(out, {
            "inputs": inputs, "config": config.to_dict(),
            "shard": list(shard), "out": str(out.resolve()), "code": [code_version(), *determined_by],
            "exemplars": tree_listing(exemplars) if exemplars else None,
            "base": [str(Path(base_release).resolve()), tree_listing(Path(base_release))] if base_release else None,
        })

    def _path(self, models: dict[str, Any]) -> Path:
        return self.out / "steps" / f"run-{fp.digest({**self.payload, 'models': models})[:16]}.json"

    def outputs(self, report: dict[str, Any]) -> list[Path]:
        """What the run wrote: the shard outcome, photos and thumbnails, the release (or rejects file), the gallery."""
        written = [self.out / "shard", self.out / "images", self.out / "thumbnails"]
        for key in ("release", "rejects_file", "gallery"):
            if report.get(key):
                written.append(Path(report[key]))
        if report.get("gallery"):
            written.append(Path(report["gallery"]).with_suffix(""))
        return written

    def result(self, models: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded report if a run with these inputs, config, code and `models` (what each role's
        backend serves) finished and left every output as it wrote it; else None."""
        try:
            stamp = json.loads(self._path(models).read_text(encoding="utf-8"))
            outputs = [Path(output) for output in stamp["outputs"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if stamp.get("listing") != listing(outputs) or stamp.get("checksums") != _checksums(stamp.get("result", {})):
            return None
        return stamp.get("result")

    def record(self, models: dict[str, Any], report: dict[str, Any]) -> None:
        outputs = self.outputs(report)
        stamp = {"result": report, "outputs": [str(p) for p in outputs], "listing": listing(outputs),
                 "checksums": _checksums(report)}
        write_atomic(self._path(models), json.dumps(stamp, sort_keys=True).encode())


def _checksums(report: dict[str, Any]) -> str | None:
    """sha256 of the release's checksums.sha256 (None without a release; "missing" when it is gone)."""
    if not report.get("release"):
        return None
    try:
        return hashlib.sha256((Path(report["release"]) / "checksums.sha256").read_bytes()).hexdigest()
    except OSError:
        return "missing"
