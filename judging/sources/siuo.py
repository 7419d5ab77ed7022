"""SIUO (Safe Inputs but Unsafe Output; sinwang20/SIUO): 167 items, each a safe image + safe question whose
combination is unsafe.

Annotations: ``siuo_gen.json`` (list of objects: ``question_id``, ``image``, ``question``, ``category``,
``safety_warning``, ``reference_answer``). Images (``S-01.png`` ...) are distributed as a zip outside the
repo: point ``image_root`` at the extracted folder.

Tasks and labels:
- ``query``: (image, question) -> every item is **unsafe** (single class: scored with a detection rate).
- ``response``: (image, question, reference_answer) -> the reference answer is a **safe** response
  (single class "safe" for this task: scored as the fraction judged safe; its complement is the judge's
  over-refusal rate).
"""

from __future__ import annotations

from collections.abc import Iterator

from judging.records import QUERY, RESPONSE, Task
from judging.sources.benchmark_files import BenchmarkSource, load_json_list, require
from judging.sources.registry import register_source
from rms_dataset import SAFE, UNSAFE


@register_source
class SIUO(BenchmarkSource):
    name = "siuo"
    tasks = (QUERY, RESPONSE)
    single_class = UNSAFE
    shared_annotations = ("SIUO", "siuo_gen.json")
    annotation_file = "siuo_gen.json"

    def single_class_for(self, task: Task) -> str | None:
        return SAFE if task == RESPONSE else UNSAFE

    def _examples(self, task: Task) -> Iterator:
        rows = load_json_list(self.annotations)
        for index, row in enumerate(rows):
            where = f"{self.annotations}: item {index}"
            question_id = require(row, "question_id", where, (int, str))
            meta = {"safety_warning": row.get("safety_warning")}
            response = require(row, "reference_answer", where) if task == RESPONSE else None
            yield self._example(
                require(row, "image", where),
                text=require(row, "question", where),
                label=SAFE if task == RESPONSE else UNSAFE,
                source_id=str(question_id),
                response=response,
                category=require(row, "category", where),
                meta=meta,
            )
