"""Stamps of the steps that write whole outputs (the release with its validation, the gallery), so that a
rerun that changes nothing does nothing.

A stamp is ``steps/<name>-<fingerprint>.json`` in the run directory, like a model step's checkpoint: the
fingerprint hashes everything the output is made from (the shard outcome, the config, the code that writes
it), the stamp holds the step's result (its report) and a listing of the files it wrote (name, size,
modification time). The step is skipped when its stamp exists and every listed file is still there as
written; a changed input, changed code, or an output deleted or edited by hand rewrites it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from atomic_files import write_atomic


def listing(outputs: list[Path]) -> list[list]:
    """[relative path, size, mtime_ns] of every file under (or at) each output path, sorted."""
    rows = []
    for output in outputs:
        if output.is_file():
            stat = output.stat()
            rows.append([output.name, stat.st_size, stat.st_mtime_ns])
            continue
        parent = str(output.parent)
        skip = len(parent) + 1  # the path below output's parent (walked as parent/name, "./name" included)
        for folder, _, files in os.walk(os.path.join(parent, output.name)):
            for name in files:
                path = os.path.join(folder, name)
                stat = os.stat(path)
                rows.append([path[skip:], stat.st_size, stat.st_mtime_ns])
    return sorted(rows)


class Stamp:
    """The stamp of step `name` under `steps/` for `fingerprint`."""

    def __init__(self, steps: Path, name: str, fingerprint: str):
        self.path = Path(steps) / f"{name}-{fingerprint[:16]}.json"

    def result(self) -> dict[str, Any] | None:
        """The recorded result if the step is done and its outputs are as it wrote them, else None."""
        try:
            stamp = json.loads(self.path.read_text(encoding="utf-8"))
            outputs = [Path(output) for output in stamp["outputs"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not all(output.exists() for output in outputs) or stamp.get("listing") != listing(outputs):
            return None
        return stamp.get("result")

    def record(self, result: dict[str, Any], outputs: list[Path]) -> None:
        """Record `result` and the files of `outputs` (files or folders) as written now."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stamp = {"result": result, "outputs": [str(output) for output in outputs], "listing": listing(outputs)}
        write_atomic(self.path, json.dumps(stamp, sort_keys=True).encode())
