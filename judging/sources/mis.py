"""MIS (Multi-Image Safety; DripNowhy/MIS, data on the Hugging Face "Tuwhy" collection).

NOT CHECKED AGAINST REAL FILES: no MIS data file was available here. The format below is the one the
project README describes (``mis_easy.json`` / ``mis_hard.json`` / ``mis_real.json`` for testing, read by a
``question`` field, several images per item under ``easy_image/<n>/...`` etc.) plus the LLaVA-style
conversation layout assumed for the training file ``mis_train.json``:

- train: a JSON list of ``{"id", "image": [paths] | path, "conversations": [{"from": "human", "value":
  "<image>\\n<image>\\n<question>"}, {"from": "gpt", "value": "<safe, reasoned answer>"}]}``
- test: a JSON list of ``{"id"?, "image": [paths] | path, "question", "category"?, "sub_category"?}``

Tasks and labels:
- ``query``: every MIS question is unsafe in combination with its images -> **unsafe** (single class).
- ``response`` (train only): the ``gpt`` answer is a **safe** response (single class "safe").

The judge sees one image, so an item's images are placed side by side into one picture (left to right in
file order; see ``side_by_side``). Images are looked up under ``image_root``; an item with any image
missing keeps ``image=None`` and its paths are listed in ``source.report.missing_images``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from judging.records import QUERY, RESPONSE, JudgeExample, Task, content_id
from judging.sources.benchmark_files import AnnotationError, BenchmarkReport, load_json_list, require
from judging.sources.registry import Source, register_source
from rms_dataset import SAFE, UNSAFE

TRAIN_FILE = "mis_train.json"
TEST_FILES = {"easy": "mis_easy.json", "hard": "mis_hard.json", "real": "mis_real.json"}
_IMAGE_TAG = re.compile(r"\s*<image>\s*")


def side_by_side(paths: list[str]):
    """One RGB image holding the given images left to right, each scaled to the tallest one's height."""
    from PIL import Image

    images = [Image.open(path).convert("RGB") for path in paths]
    if len(images) == 1:
        return images[0]
    height = max(image.height for image in images)
    scaled = [image.resize((max(1, round(image.width * height / image.height)), height)) for image in images]
    canvas = Image.new("RGB", (sum(image.width for image in scaled), height), "white")
    x = 0
    for image in scaled:
        canvas.paste(image, (x, 0))
        x += image.width
    return canvas


@register_source
class MIS(Source):
    name = "mis"
    tasks = (QUERY, RESPONSE)
    single_class = UNSAFE
    splits = ("train", "test")

    def __init__(self, data_dir: str | os.PathLike, image_root: str | os.PathLike | None = None,
                 test_subset: str = "hard"):
        self.data_dir = Path(data_dir).expanduser()
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"mis: data_dir={str(data_dir)!r} is not a folder; point it at the folder holding "
                                    f"{TRAIN_FILE} and {', '.join(TEST_FILES.values())}")
        if test_subset not in TEST_FILES:
            raise ValueError(f"mis: test_subset={test_subset!r}; choose one of {sorted(TEST_FILES)}")
        self.image_root = Path(image_root).expanduser() if image_root is not None else self.data_dir
        self.test_subset = test_subset
        self.report = BenchmarkReport()

    def single_class_for(self, task: Task) -> str | None:
        return SAFE if task == RESPONSE else UNSAFE

    def provenance(self) -> dict:
        return {"data_dir": str(self.data_dir), "image_root": str(self.image_root), "test_subset": self.test_subset,
                "format_checked_against_real_files": False}

    def examples(self, split: str = "train", task: Task = QUERY) -> Iterator[JudgeExample]:
        if split not in self.splits:
            raise ValueError(f"mis: unknown split {split!r}; supported: {list(self.splits)}")
        if task not in self.tasks:
            raise ValueError(f"mis: task {task!r} is not supported; supported: {list(self.tasks)}")
        if split == "test" and task == RESPONSE:
            raise ValueError("mis: the test files have no responses; use task='query'")
        path = self.data_dir / (TRAIN_FILE if split == "train" else TEST_FILES[self.test_subset])
        if not path.is_file():
            raise AnnotationError(f"mis: {path} is missing")
        rows = load_json_list(path)
        self.report = BenchmarkReport()
        for index, row in enumerate(rows):
            where = f"{path}: item {index}"
            text, response = self._train_turns(row, where) if split == "train" else (require(row, "question", where), None)
            image, meta = self._image(row, where)
            yield JudgeExample(
                image=image, text=text, response=response if task == RESPONSE else None,
                label=SAFE if task == RESPONSE else UNSAFE, source=self.name, source_id=self._id(row, text),
                category=row.get("category"), meta=meta,
            )

    @staticmethod
    def _id(row: dict, text: str) -> str:
        """The record's id, or one derived from its question and image paths (stable across files)."""
        if row.get("id") is not None:
            return str(row["id"])
        images = row.get("image", row.get("images"))
        return content_id(text, *([images] if isinstance(images, str) else images or []))

    @staticmethod
    def _train_turns(row: dict, where: str) -> tuple[str, str]:
        turns = require(row, "conversations", where, list)
        human = [turn for turn in turns if isinstance(turn, dict) and turn.get("from") == "human"]
        gpt = [turn for turn in turns if isinstance(turn, dict) and turn.get("from") == "gpt"]
        if not human or not gpt:
            raise AnnotationError(f"{where}: conversations need a 'human' and a 'gpt' turn, found "
                                  f"{[turn.get('from') for turn in turns if isinstance(turn, dict)]}")
        question = _IMAGE_TAG.sub(" ", require(human[0], "value", f"{where} human turn")).strip()
        return question, require(gpt[0], "value", f"{where} gpt turn")

    def _image(self, row: dict, where: str):
        value = row.get("image", row.get("images"))
        relatives = [value] if isinstance(value, str) else value
        if not relatives or not all(isinstance(item, str) and item for item in relatives):
            raise AnnotationError(f"{where}: field 'image' must be a path or a non-empty list of paths, got {value!r}")
        self.report.n_examples += 1
        missing = [relative for relative in relatives if not (self.image_root / relative).is_file()]
        if missing:
            self.report.missing_images.extend(missing)
            return None, {"missing_image": missing[0], "n_images": len(relatives)}
        self.report.n_images_found += 1
        return side_by_side([str(self.image_root / relative) for relative in relatives]), {"n_images": len(relatives)}
