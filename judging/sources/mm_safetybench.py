"""MM-SafetyBench (isXinLiu/MM-SafetyBench). NOT YET CHECKED AGAINST REAL FILES: no copy of the annotation
files was available; this adapter follows the documented format and is tested on a fixture written from it.

Annotations: a folder ``processed_questions/`` with one JSON per scenario (13 files, e.g.
``01-Illegal_Activitiy.json``, sic), each an object keyed by string ids ``"0"``, ``"1"``, ... with fields
``Question``, ``Changed Question``, ``Key Phrase``, ``Phrase Type``, ``Rephrased Question``,
``Rephrased Question(SD)``. A single scenario file is accepted too.

Images: ``<image_root>/<scenario>/<kind>/<id>.jpg`` with kind ``SD``, ``SD_TYPO`` or ``TYPO`` (the
``imgs/`` folder of the release). ``SD`` images pair with ``Rephrased Question(SD)``; ``SD_TYPO`` and
``TYPO`` images with ``Rephrased Question``. Option ``image_kinds`` (default all three) picks which.
Every item is **unsafe** (single class); the category is the scenario name without its number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from judging.records import QUERY, Task
from judging.sources.benchmark_files import AnnotationError, BenchmarkSource, load_json, require
from judging.sources.registry import register_source
from rms_dataset import UNSAFE

TEXT_FIELD = {"SD": "Rephrased Question(SD)", "SD_TYPO": "Rephrased Question", "TYPO": "Rephrased Question"}
IMAGE_KINDS = tuple(TEXT_FIELD)


def scenario_category(scenario: str) -> str:
    """``01-Illegal_Activitiy`` -> ``Illegal_Activitiy`` (the published spelling is kept)."""
    return re.sub(r"^\d+-", "", scenario)


@register_source
class MMSafetyBench(BenchmarkSource):
    name = "mm_safetybench"
    tasks = (QUERY,)
    single_class = UNSAFE
    shared_annotations = None  # no shared copy: annotations= must be given

    def __init__(self, image_kinds: Sequence[str] = IMAGE_KINDS, **options):
        unknown = [kind for kind in image_kinds if kind not in IMAGE_KINDS]
        if unknown or not image_kinds:
            raise ValueError(f"mm_safetybench: image_kinds must be a non-empty subset of {IMAGE_KINDS}, "
                             f"got {list(image_kinds)}")
        self.image_kinds = tuple(image_kinds)
        super().__init__(**options)

    def scenario_files(self) -> list[Path]:
        if self.annotations.is_file():
            return [self.annotations]
        files = sorted(self.annotations.glob("*.json"))
        if not files:
            raise AnnotationError(f"mm_safetybench: no scenario *.json files in {self.annotations}; set "
                                  f"annotations to MM-SafetyBench's data/processed_questions folder")
        return files

    def _examples(self, task: Task) -> Iterator:
        for path in self.scenario_files():
            scenario = path.stem
            items = load_json(path)
            if not isinstance(items, dict):
                raise AnnotationError(f"{path}: expected an object keyed by question id, got {type(items).__name__}")
            for item_id, item in items.items():
                where = f"{path}: item {item_id!r}"
                for kind in self.image_kinds:
                    yield self._example(
                        f"{scenario}/{kind}/{item_id}.jpg",
                        text=require(item, TEXT_FIELD[kind], where),
                        label=UNSAFE,
                        source_id=f"{scenario}/{kind}/{item_id}",
                        category=scenario_category(scenario),
                        meta={"image_kind": kind, "question": item.get("Question"),
                              "key_phrase": item.get("Key Phrase")},
                    )
