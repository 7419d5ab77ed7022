"""Where `python -m eval.benchmarks fetch` puts benchmarks, and what a source reads from a fetched copy.

A fetched benchmark is a folder ``<benchmarks dir>/<source name>/`` holding the Hub repo's files in the
repo's layout (archives extracted beside them) and ``rms_fetched.json``, the manifest written last: repo id,
the commit fetched, the annotation file and image folder (relative to the folder) and the sha256 of every file.
The benchmarks dir is ``$RMS_BENCHMARKS_DIR``, else ``~/.cache/rms/benchmarks``.

A `BenchmarkSource` given none of ``annotations``, ``image_root``, ``hub_dataset`` reads its fetched copy when
there is one (`fetched_copy`), and its cell key gains ``rev=<commit[:12]>`` (`fetched_key_parts`), so a cell
scored on fetched data names the revision it was scored on. Without a fetched copy the shared annotation files
(``../shared/benchmarks``) stay the offline default.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from judging.sources.benchmark_files import AnnotationError, FolderImages

BENCHMARKS_DIR_ENV = "RMS_BENCHMARKS_DIR"
MANIFEST = "rms_fetched.json"
# options that say where the data is: with any of them the user chose the data, not the fetched copy
EXPLICIT_DATA_OPTIONS = ("annotations", "image_root", "hub_dataset")


def benchmarks_dir() -> Path:
    """``$RMS_BENCHMARKS_DIR``, else ``~/.cache/rms/benchmarks`` (where fetch writes and sources look)."""
    if os.environ.get(BENCHMARKS_DIR_ENV):
        return Path(os.environ[BENCHMARKS_DIR_ENV]).expanduser()
    return Path("~/.cache/rms/benchmarks").expanduser()


@dataclass(frozen=True)
class FetchedImages(FolderImages):
    """Images of a fetched copy: a folder, plus the Hub repo and commit they came from (cell provenance)."""

    repo_id: str = ""
    revision: str = ""


@dataclass(frozen=True)
class FetchedCopy:
    name: str
    folder: Path
    repo_id: str
    revision: str  # the commit sha fetched
    annotations: Path
    image_root: Path | None

    def images(self) -> FetchedImages | None:
        if self.image_root is None:
            return None
        return FetchedImages(self.image_root, repo_id=self.repo_id, revision=self.revision)


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise AnnotationError(f"{path}: fetch manifest is unreadable ({error}); run `python -m eval.benchmarks "
                              f"fetch {folder.name}` again") from None
    return manifest if isinstance(manifest, dict) else None


def fetched_copy(name: str) -> FetchedCopy | None:
    """The fetched copy of benchmark ``name``, or None when it was never fetched (completely)."""
    folder = benchmarks_dir() / name
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    try:
        image_root = manifest["image_root"]
        return FetchedCopy(name=name, folder=folder, repo_id=manifest["repo_id"], revision=manifest["commit"],
                           annotations=folder / manifest["annotations"],
                           image_root=folder / image_root if image_root is not None else None)
    except (KeyError, TypeError) as error:
        raise AnnotationError(f"{folder / MANIFEST}: field {error} is missing; run `python -m eval.benchmarks "
                              f"fetch {name}` again") from None


def uses_fetched_copy(options: dict) -> bool:
    return not any(options.get(key) is not None for key in EXPLICIT_DATA_OPTIONS)


def fetched_key_parts(name: str, options: dict) -> list[str]:
    """``["rev=<commit[:12]>"]`` when a source with these options reads its fetched copy, else ``[]``."""
    if not uses_fetched_copy(options):
        return []
    copy = fetched_copy(name)
    return [f"rev={copy.revision[:12]}"] if copy is not None else []
