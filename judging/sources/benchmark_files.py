"""What every benchmark adapter shares: finding annotation files, reading rows with clear errors, finding
images (a local folder or a Hub dataset repo) and reporting the images that could not be found.

A benchmark adapter (``siuo.py``, ``figstep.py``, ...) subclasses `BenchmarkSource`, says where its
annotation file lives in the shared copy, and implements ``_examples(task)``, building each example with
``self._example(image_path, ...)``. Missing images are never skipped: the example keeps ``image=None`` and
``meta["missing_image"] = <relative path>``, and ``source.report`` lists them after iteration.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from judging.records import JudgeExample, Task
from judging.sources.registry import Source

SHARED_ENV = "RMS_SHARED"


class AnnotationError(ValueError):
    """An annotation file is missing or malformed. The message names the file, row and field."""


def shared_dir() -> Path:
    """The shared data folder: ``$RMS_SHARED`` if set, else ``../shared`` next to the repository."""
    if os.environ.get(SHARED_ENV):
        return Path(os.environ[SHARED_ENV])
    return (Path(__file__).resolve().parents[2] / ".." / "shared").resolve()


def shared_benchmark_path(*parts: str) -> Path:
    return shared_dir() / "benchmarks" / Path(*parts)


def resolve_annotations(source: str, given: str | os.PathLike | None, default: Path | None, filename: str | None) -> Path:
    """The annotation path to read: ``given`` (a file, or a folder holding ``filename``), else ``default``.

    Raises `AnnotationError` naming the path and the ``annotations`` option when nothing is there.
    """
    if given is None:
        if default is None or not default.exists():
            where = f" (the shared copy {default} is not there)" if default is not None else ""
            raise AnnotationError(
                f"{source}: no annotation file{where}; pass annotations=<path to {filename or 'the annotation folder'}>"
            )
        return default
    path = Path(given).expanduser()
    if not path.exists():
        raise AnnotationError(f"{source}: annotations={str(given)!r} does not exist; set the annotations option to "
                              f"the benchmark's {filename or 'annotation folder'}")
    if path.is_dir() and filename is not None:
        inner = path / filename
        if not inner.is_file():
            raise AnnotationError(f"{source}: folder {path} has no {filename}; set annotations to the file itself")
        return inner
    return path


def load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}") from error


def load_json_list(path: Path) -> list:
    """A JSON file holding a list of items; anything else is an `AnnotationError` naming the file."""
    rows = load_json(path)
    if not isinstance(rows, list):
        raise AnnotationError(f"{path}: expected a JSON list of items, got {type(rows).__name__}")
    return rows


def read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """CSV rows as dicts; raises `AnnotationError` when a required column is absent."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in required if column not in (reader.fieldnames or [])]
        if missing:
            raise AnnotationError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
        return list(reader)


def require(row: Any, name: str, where: str, kind: type | tuple[type, ...] = str, allow_empty: bool = False) -> Any:
    """``row[name]``, checked to be present, of ``kind`` and (unless ``allow_empty``) non-empty; ``where`` names
    the file and row for the error message."""
    if not isinstance(row, dict):
        raise AnnotationError(f"{where}: expected an object with field {name!r}, got {type(row).__name__}")
    if name not in row or row[name] is None:
        raise AnnotationError(f"{where}: field {name!r} is missing")
    value = row[name]
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip() and not allow_empty):
        raise AnnotationError(f"{where}: field {name!r} must be a non-empty {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------- images


class ImageStore(Protocol):
    def find(self, relative_path: str) -> str | None:
        """A local file path for the image, or None when it is not there."""


@dataclass(frozen=True)
class FolderImages:
    """Images under a local folder the user points to (``image_root``)."""

    root: Path

    def find(self, relative_path: str) -> str | None:
        candidate = self.root / relative_path
        return str(candidate) if candidate.is_file() else None


@dataclass(frozen=True)
class HubImages:
    """Images inside a Hub dataset repo (``hub_dataset`` + ``revision``), downloaded one by one into the HF cache."""

    repo_id: str
    revision: str | None = None
    endpoint: str | None = None

    def find(self, relative_path: str) -> str | None:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        try:
            return hf_hub_download(self.repo_id, relative_path, repo_type="dataset", revision=self.revision,
                                   endpoint=self.endpoint)
        except LocalEntryNotFoundError as error:  # offline and not cached: a setup problem, not a missing image
            raise FileNotFoundError(
                f"hub_dataset={self.repo_id!r} (revision {self.revision!r}): {relative_path} is not in the local "
                f"Hugging Face cache and the Hub cannot be reached ({error.__class__.__name__}); go online once "
                f"or download the images and pass image_root instead") from error
        except EntryNotFoundError:  # the repo has no such file: a missing image, reported
            return None


def image_store(source: str, image_root: str | os.PathLike | None, hub_dataset: str | None, revision: str | None,
                endpoint: str | None = None, default_root: Path | None = None) -> ImageStore | None:
    if image_root is not None and hub_dataset is not None:
        raise ValueError(f"{source}: give image_root or hub_dataset, not both")
    if revision is not None and hub_dataset is None:
        raise ValueError(f"{source}: revision={revision!r} needs hub_dataset")
    if hub_dataset is not None:
        return HubImages(hub_dataset, revision, endpoint)
    if image_root is not None:
        root = Path(image_root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{source}: image_root={str(image_root)!r} is not a folder; point it at the "
                                    f"folder holding the benchmark's images")
        return FolderImages(root)
    if default_root is not None and default_root.is_dir():
        return FolderImages(default_root)
    return None


@dataclass
class BenchmarkReport:
    """Filled while a source yields examples: how many, which images were missing, what was left out and why,
    and ``notes`` on the published data itself (duplicate ids, train/test overlap) a reader should know."""

    n_examples: int = 0
    n_images_found: int = 0
    missing_images: list[str] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    @property
    def n_missing_images(self) -> int:
        return len(self.missing_images)

    def summary(self) -> str:
        text = f"{self.n_examples} examples, {self.n_images_found} images found, {self.n_missing_images} missing"
        if self.excluded:
            text += ", excluded: " + ", ".join(f"{k} {v}" for k, v in sorted(self.excluded.items()))
        return text + "".join(f"\n  note: {note}" for note in self.notes)


class BenchmarkSource(Source):
    """A benchmark read from its published annotation files, images from a folder or a Hub dataset repo.

    Options: ``annotations`` (file or folder; default the fetched copy, else the shared copy), ``image_root``
    or ``hub_dataset`` (+ ``revision``); with none of the three, a fetched copy (`judging.sources.fetched`)
    gives annotations and images. Subclasses set ``shared_annotations`` (path parts under ``shared/benchmarks``) and
    ``annotation_file`` (the file name looked for inside an ``annotations`` folder), and implement
    ``_examples(task)``.
    """

    shared_annotations: ClassVar[tuple[str, ...] | None] = None
    annotation_file: ClassVar[str | None] = None

    def __init__(self, annotations: str | os.PathLike | None = None, image_root: str | os.PathLike | None = None,
                 hub_dataset: str | None = None, revision: str | None = None, hub_endpoint: str | None = None):
        from judging.sources.fetched import fetched_copy, uses_fetched_copy

        fetched = fetched_copy(self.name) if uses_fetched_copy(
            {"annotations": annotations, "image_root": image_root, "hub_dataset": hub_dataset}) else None
        default = shared_benchmark_path(*self.shared_annotations) if self.shared_annotations else None
        self.annotations = resolve_annotations(self.name, annotations, fetched.annotations if fetched else default,
                                               self.annotation_file)
        self.images = fetched.images() if fetched else image_store(self.name, image_root, hub_dataset, revision,
                                                                   hub_endpoint, self.default_image_root())
        self.report = BenchmarkReport()

    @classmethod
    def key_parts(cls, options: dict) -> list[str]:
        """``rev=<commit>`` when the source reads a fetched copy (`judging.sources.fetched`)."""
        from judging.sources.fetched import fetched_key_parts

        return fetched_key_parts(cls.name, options)

    def default_image_root(self) -> Path | None:
        """Where images are looked for when neither image_root nor hub_dataset is given (None: nowhere)."""
        return None

    def single_class_for(self, task: Task) -> str | None:
        """The one gold label of every item for ``task`` (scored with a detection rate), or None."""
        return self.single_class

    def examples(self, split: str = "test", task: Task = "query") -> Iterator[JudgeExample]:
        if split not in self.splits:
            raise ValueError(f"{self.name}: unknown split {split!r}; this benchmark has {list(self.splits)}")
        if task not in self.tasks:
            raise ValueError(f"{self.name}: task {task!r} is not supported; supported: {list(self.tasks)}")
        self.report = BenchmarkReport()
        yield from self._examples(task)

    def resolve_images(self, split: str = "test", task: Task = "query") -> BenchmarkReport:
        """Walk every example once and return the report (images found / missing, exclusions)."""
        for _ in self.examples(split, task):
            pass
        return self.report

    def _examples(self, task: Task) -> Iterator[JudgeExample]:
        raise NotImplementedError

    def _find_image(self, candidates: Sequence[str]) -> str | None:
        if self.images is None:
            return None
        for candidate in candidates:
            found = self.images.find(candidate)
            if found is not None:
                return found
        return None

    def _example(self, image: str | Sequence[str], *, text: str, label: str, source_id: str,
                 response: str | None = None, category: str | None = None, meta: dict | None = None) -> JudgeExample:
        """Build one example, resolving its image (first of the candidate relative paths that exists)."""
        candidates = [image] if isinstance(image, str) else list(image)
        meta = dict(meta or {})
        found = self._find_image(candidates)
        self.report.n_examples += 1
        if found is None:
            meta["missing_image"] = candidates[0]
            self.report.missing_images.append(candidates[0])
        else:
            self.report.n_images_found += 1
        return JudgeExample(image=found, text=text, label=label, source=self.name, source_id=source_id,
                            response=response, category=category, meta=meta)
