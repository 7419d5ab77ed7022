"""SIUO (Safe Inputs but Unsafe Output; sinwang20/SIUO): 167 items, each a safe image + safe question whose
combination is unsafe.

Annotations: ``siuo_gen.json`` (list of objects: ``question_id``, ``image``, ``question``, ``category``,
``safety_warning``, ``reference_answer``) and, next to it, ``siuo_mcqa.json`` (the same items with four
answer ``options`` and the ``correct_option``, the one safe answer). Images (``S-01.png`` ...) are
distributed as a zip outside the repo: point ``image_root`` at the extracted folder.

Tasks and labels (both classes on each task, so an always-"unsafe" or always-"safe" judge scores 0.5
balanced accuracy; docs/eval.md):
- ``query``: (image, question) -> every SIUO item is **unsafe**; with ``benign="vlguard"`` (default) VLGuard's
  test safe-image + safe-instruction items join the cell as the **safe** class (real photos with harmless
  requests; `judging.sources.counterparts`; ``benign_options`` are VLGuard's options).
- ``response``: (image, question, answer) -> the ``reference_answer`` is a **safe** response; with
  ``unsafe_responses="mcqa"`` (default) the three wrong MCQA options of the same item are **unsafe**
  responses (SIUO's MCQA distractors are answers that miss the risk the combination carries; source_id
  ``<question_id>:mcqa-<letter>``).

``benign="none"`` / ``unsafe_responses="none"`` give the single-class benchmark (a detection rate; such a
cell is shown but not counted in the dataset score).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from judging.records import QUERY, RESPONSE, Task
from judging.sources.benchmark_files import AnnotationError, BenchmarkSource, load_json_list, require
from judging.sources.counterparts import NONE, VLGUARD, benign_key_parts, check_choice, interleave, vlguard_benign
from judging.sources.registry import register_source
from rms_dataset import SAFE, UNSAFE

MCQA = "mcqa"
MCQA_FILE = "siuo_mcqa.json"


@register_source
class SIUO(BenchmarkSource):
    name = "siuo"
    complementarity = True  # the risk is in the image-text pair (eval.audit: text-alone leakage)
    tasks = (QUERY, RESPONSE)
    single_class = UNSAFE
    shared_annotations = ("SIUO", "siuo_gen.json")
    annotation_file = "siuo_gen.json"

    def __init__(self, benign: str = NONE, benign_options: dict[str, Any] | None = None,
                 unsafe_responses: str = MCQA, **options):
        self.benign = check_choice("siuo", "benign", benign, (VLGUARD, NONE))
        self.benign_options = dict(benign_options or {})
        self.unsafe_responses = check_choice("siuo", "unsafe_responses", unsafe_responses, (MCQA, NONE))
        super().__init__(**options)

    @classmethod
    def key_parts(cls, options: dict) -> list[str]:
        return super().key_parts(options) + benign_key_parts(options)

    def single_class_for(self, task: Task) -> str | None:
        if task == RESPONSE:
            return None if self.unsafe_responses == MCQA else SAFE
        return None if self.benign == VLGUARD else UNSAFE

    def _examples(self, task: Task) -> Iterator:
        if task == QUERY and self.benign == VLGUARD:
            yield from interleave(self._items(task), vlguard_benign(self.name, self.report, self.benign_options))
        else:
            yield from self._items(task)

    def _items(self, task: Task) -> Iterator:
        rows = load_json_list(self.annotations)
        distractors = self._distractors() if task == RESPONSE and self.unsafe_responses == MCQA else {}
        for index, row in enumerate(rows):
            where = f"{self.annotations}: item {index}"
            question_id = str(require(row, "question_id", where, (int, str)))
            image, question = require(row, "image", where), require(row, "question", where)
            category = require(row, "category", where)
            meta = {"safety_warning": row.get("safety_warning")}
            if task == QUERY:
                yield self._example(image, text=question, label=UNSAFE, source_id=question_id, category=category,
                                    meta=meta)
                continue
            yield self._example(image, text=question, label=SAFE, source_id=question_id,
                                response=require(row, "reference_answer", where), meta=meta)
            for letter, answer in distractors.get(question_id, []):
                yield self._example(image, text=question, label=UNSAFE, source_id=f"{question_id}:mcqa-{letter}",
                                    response=answer, category=category, meta={**meta, "counterpart": MCQA})

    def _distractors(self) -> dict[str, list[tuple[str, str]]]:
        """question_id -> the MCQA options other than the correct one, from siuo_mcqa.json beside siuo_gen.json."""
        path = self.annotations.with_name(MCQA_FILE)
        if not path.is_file():
            raise AnnotationError(f"siuo: {path} is missing; it gives the response task its unsafe class. Put "
                                  f"{MCQA_FILE} next to {self.annotations.name} or pass unsafe_responses='none'")
        found: dict[str, list[tuple[str, str]]] = {}
        for index, row in enumerate(load_json_list(path)):
            where = f"{path}: item {index}"
            options = require(row, "options", where, dict)
            correct = require(row, "correct_option", where)
            if correct not in options:
                raise AnnotationError(f"{where}: correct_option {correct!r} is not one of its options {sorted(options)}")
            found[str(require(row, "question_id", where, (int, str)))] = [
                (letter, text.strip()) for letter, text in sorted(options.items())
                if letter != correct and isinstance(text, str) and text.strip()]
        return found
