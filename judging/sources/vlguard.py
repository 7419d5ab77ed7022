"""VLGuard (ys-zong/VLGuard): the real ``train.json`` (2000 images) and ``test.json`` (1000 images).

The ``safe`` field refers to the **image**:
- a safe image (``safe: true``) has two turns: ``safe_instruction`` + response (a safe query) and
  ``unsafe_instruction`` + response (an unsafe query; the response is a refusal);
- an unsafe image (``safe: false``) has one turn: ``instruction`` + response (an unsafe query, refused).

Tasks and labels:
- ``query``: (image, instruction) -> ``safe`` for a ``safe_instruction`` turn, ``unsafe`` otherwise.
  Counts in the published files: train 977 safe / 2000 unsafe, test 558 safe / 1000 unsafe.
- ``response``: (image, instruction, response) -> every VLGuard response is a **safe** response (helpful
  answers to safe queries, refusals to unsafe ones): VLGuard has no unsafe responses, so this task is single
  class ``safe`` and must be mixed with a source that has unsafe responses to train on.

Images: ``image_root`` (the extracted ``train.zip`` / ``test.zip`` of the Hub dataset; the JSON's ``image``
paths are looked up under ``image_root`` and ``image_root/<split>``) or ``hub_dataset="ys-zong/VLGuard"``
(+ ``revision``), which downloads and extracts ``<split>.zip`` once into the Hugging Face cache. Images that
cannot be found keep ``image=None`` and are listed in ``source.report.missing_images``.

Known problems of the published files, reported in ``source.report.notes`` whenever a split is read:
- ``train.json`` has the id ``Ads_303871`` twice, with different turns (same image). Both records are kept;
  the second one's examples get ids ``Ads_303871#2:<turn>`` so no two examples share a ``source_id``.
- 8 images are in both ``train.json`` and ``test.json`` (one, ``harm-p/memes_3364.png``, is unsafe in train and
  safe in test). A judge trained on VLGuard has seen them: ``drop_train_overlap=True`` leaves those test
  records out (counted in ``report.excluded["train overlap"]``). Use it whenever the judge's training data
  includes VLGuard's train split, e.g. when VLGuard's test items are the benign counterpart of another
  benchmark (``judging/sources/counterparts.py``).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from judging.records import QUERY, RESPONSE, JudgeExample, Task
from judging.sources.benchmark_files import (
    AnnotationError,
    BenchmarkReport,
    FolderImages,
    load_json,
    require,
    resolve_annotations,
    shared_benchmark_path,
)
from judging.sources.registry import Source, register_source
from rms_dataset import SAFE, UNSAFE

HUB_DATASET = "ys-zong/VLGuard"


def _extracted_hub_split(repo_id: str, split: str, revision: str | None) -> Path:
    """Download ``<split>.zip`` from the Hub dataset once and extract it next to the cached file."""
    from huggingface_hub import hf_hub_download

    archive = Path(hf_hub_download(repo_id, f"{split}.zip", repo_type="dataset", revision=revision))
    target = archive.parent / f"{split}_extracted"
    if not (target / ".complete").exists():
        with zipfile.ZipFile(archive) as handle:
            handle.extractall(target)
        (target / ".complete").touch()
    return target


def duplicate_id_notes(rows: list, path: Path) -> list[str]:
    """One note per id that appears more than once in a VLGuard file (and whether the copies differ)."""
    by_id: dict[str, list] = {}
    for row in rows:
        if isinstance(row, dict) and isinstance(row.get("id"), str):
            by_id.setdefault(row["id"], []).append(row)
    notes = []
    for record_id, copies in sorted(by_id.items()):
        if len(copies) > 1:
            differ = any(copy != copies[0] for copy in copies[1:])
            notes.append(f"{path.name}: id {record_id} appears {len(copies)} times"
                         + (" with different content" if differ else " (identical copies)")
                         + f"; later copies get ids {record_id}#2...")
    return notes


@register_source
class VLGuard(Source):
    name = "vlguard"
    tasks = (QUERY, RESPONSE)
    single_class = None
    splits = ("train", "test")

    def __init__(self, annotations: str | os.PathLike | None = None, image_root: str | os.PathLike | None = None,
                 hub_dataset: str | None = None, revision: str | None = None, drop_train_overlap: bool = False):
        if not isinstance(drop_train_overlap, bool):
            raise ValueError(f"vlguard: drop_train_overlap must be true or false, got {drop_train_overlap!r}")
        self.drop_train_overlap = drop_train_overlap
        if image_root is not None and hub_dataset is not None:
            raise ValueError("vlguard: give image_root or hub_dataset, not both")
        if revision is not None and hub_dataset is None:
            raise ValueError(f"vlguard: revision={revision!r} needs hub_dataset (e.g. {HUB_DATASET!r})")
        from judging.sources.fetched import fetched_copy, uses_fetched_copy

        fetched = fetched_copy(self.name) if uses_fetched_copy(
            {"annotations": annotations, "image_root": image_root, "hub_dataset": hub_dataset}) else None
        if fetched is not None:  # `python -m eval.benchmarks fetch vlguard`: its folder holds the JSONs and images
            annotations, image_root, revision = fetched.folder, fetched.image_root, fetched.revision
        self.annotations_dir = resolve_annotations(self.name, annotations, shared_benchmark_path("VLGuard"), None)
        if not self.annotations_dir.is_dir():
            raise AnnotationError(f"vlguard: annotations={str(annotations)!r} must be the folder holding train.json "
                                  "and test.json")
        if image_root is not None and not Path(image_root).expanduser().is_dir():
            raise FileNotFoundError(f"vlguard: image_root={str(image_root)!r} is not a folder; point it at the "
                                    "extracted train.zip / test.zip of the Hub dataset")
        self.image_root = Path(image_root).expanduser() if image_root is not None else None
        self.hub_dataset = hub_dataset
        self.revision = revision
        self.images = fetched.images() if fetched is not None else None  # a fetched copy's repo and commit (provenance)
        self.report = BenchmarkReport()

    @classmethod
    def key_parts(cls, options: dict) -> list[str]:
        from judging.sources.fetched import fetched_key_parts

        return fetched_key_parts(cls.name, options)

    def single_class_for(self, task: Task) -> str | None:
        return SAFE if task == RESPONSE else None

    def provenance(self) -> dict:
        return {"annotations": str(self.annotations_dir), "image_root": str(self.image_root) if self.image_root else None,
                "hub_dataset": self.hub_dataset, "revision": self.revision, "drop_train_overlap": self.drop_train_overlap}

    def _image_folders(self, split: str) -> list[FolderImages]:
        if self.hub_dataset is not None:
            root = _extracted_hub_split(self.hub_dataset, split, self.revision)
        elif self.image_root is not None:
            root = self.image_root
        else:
            return []
        return [FolderImages(root), FolderImages(root / split)]

    def examples(self, split: str = "train", task: Task = QUERY) -> Iterator[JudgeExample]:
        if split not in self.splits:
            raise ValueError(f"vlguard: unknown split {split!r}; VLGuard has {list(self.splits)}")
        if task not in self.tasks:
            raise ValueError(f"vlguard: task {task!r} is not supported; supported: {list(self.tasks)}")
        path = self.annotations_dir / f"{split}.json"
        if not path.is_file():
            raise AnnotationError(f"vlguard: {path} is missing; the annotations folder must hold {split}.json")
        rows = self._records(path)
        folders = self._image_folders(split)
        self.report = BenchmarkReport()
        self.left_out: list[tuple[str, bool]] = []  # (record id, image safe) of records left out as train overlap
        self.report.notes.extend(duplicate_id_notes(rows, path))
        overlap = self._train_overlap(split, rows)
        seen: dict[str, int] = {}
        for index, row in enumerate(rows):
            where = f"{path}: record {index}"
            record_id = require(row, "id", where)
            image_safe = require(row, "safe", where, bool)
            relative = require(row, "image", where)
            seen[record_id] = seen.get(record_id, 0) + 1
            if seen[record_id] > 1:
                record_id = f"{record_id}#{seen[record_id]}"
            if self.drop_train_overlap and relative in overlap:
                self.report.excluded["train overlap"] += 1
                self.left_out.append((record_id, image_safe))
                continue
            image = next((found for folder in folders if (found := folder.find(relative)) is not None), None)
            turns = require(row, "instr-resp", where, list)
            for turn_index, turn in enumerate(turns):
                turn_where = f"{where} (id={record_id}) turn {turn_index}"
                kind, text = self._instruction(turn, image_safe, turn_where)
                if task == RESPONSE and not str(turn.get("response") or "").strip():
                    self.report.excluded["empty response"] += 1  # a few published turns have no response
                    continue
                self.report.n_examples += 1
                if image is None:
                    self.report.missing_images.append(relative)
                else:
                    self.report.n_images_found += 1
                meta = {"image_safe": image_safe, "turn": kind}
                if image is None:
                    meta["missing_image"] = relative
                response = require(turn, "response", turn_where) if task == RESPONSE else None
                yield JudgeExample(
                    image=image, text=text, response=response,
                    label=SAFE if task == RESPONSE or kind == "safe_instruction" else UNSAFE,
                    source=self.name, source_id=f"{record_id}:{kind}",
                    category=row.get("harmful_category") if kind != "safe_instruction" else None, meta=meta,
                )

    @staticmethod
    def _records(path: Path) -> list:
        rows = load_json(path)
        if not isinstance(rows, list):
            raise AnnotationError(f"{path}: expected a JSON list of records, got {type(rows).__name__}")
        return rows

    def _train_overlap(self, split: str, rows: list) -> dict[str, bool]:
        """Test images that are also train images (image path -> its ``safe`` flag in train); noted in the
        report. Empty for the train split or when train.json is absent."""
        train_path = self.annotations_dir / "train.json"
        if split != "test" or not train_path.is_file():
            return {}
        train = {row.get("image"): row.get("safe") for row in self._records(train_path) if isinstance(row, dict)}
        overlap = {row["image"]: train[row["image"]] for row in rows
                   if isinstance(row, dict) and row.get("image") in train}
        if overlap:
            flipped = [image for image in overlap
                       if any(row.get("image") == image and row.get("safe") != overlap[image] for row in rows)]
            action = ("left out: drop_train_overlap=True" if self.drop_train_overlap
                      else "kept; pass drop_train_overlap=True when the judge trained on VLGuard")
            self.report.notes.append(
                f"{len(overlap)} test images are also in train.json ({action})"
                + (f"; {len(flipped)} with a different safe label there: {', '.join(sorted(flipped))}" if flipped else ""))
        return overlap

    @staticmethod
    def _instruction(turn: dict, image_safe: bool, where: str) -> tuple[str, str]:
        expected = ("safe_instruction", "unsafe_instruction") if image_safe else ("instruction",)
        present = [key for key in ("safe_instruction", "unsafe_instruction", "instruction") if key in turn]
        if len(present) != 1 or present[0] not in expected:
            raise AnnotationError(f"{where}: expected one of {list(expected)} for an image with safe={image_safe}, "
                                  f"found {present or 'none'}")
        return present[0], require(turn, present[0], where)
