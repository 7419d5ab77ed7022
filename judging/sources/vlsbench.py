"""VLSBench (AI45Lab/VLSBench): 2241 risky images paired with innocuous-looking questions; every item is
**unsafe**. With ``benign="vlguard"`` (default) VLGuard's test safe-image + safe-instruction items join the
cell as the **safe** class, so the cell is scored with balanced accuracy (`judging.sources.counterparts`;
``benign_options`` are VLGuard's options). ``benign="none"``: the single-class benchmark (a detection rate,
not counted in the dataset score).

Annotations: ``data.json`` (list of objects: ``instruction_id``, ``instruction``, ``image_path`` such as
``imgs/0.png``, ``category``, ``sub_category``, ``source``, ``image_description``, ``safety_reason``).
Images are in ``imgs.tar`` of the Hub dataset ``Foreshhh/vlsbench``: extract it and point ``image_root`` at
the folder that contains ``imgs/``.

One published item (``instruction_id`` 1685) has an empty ``instruction``: the request is in the image. It is
kept with ``text=""`` (the count stays 2241, as published).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from judging.records import QUERY, Task
from judging.sources.benchmark_files import BenchmarkSource, load_json_list, require
from judging.sources.counterparts import NONE, VLGUARD, benign_key_parts, check_choice, interleave, vlguard_benign
from judging.sources.registry import register_source
from rms_dataset import UNSAFE


@register_source
class VLSBench(BenchmarkSource):
    name = "vlsbench"
    tasks = (QUERY,)
    single_class = UNSAFE
    shared_annotations = ("VLSBench", "data.json")
    annotation_file = "data.json"

    def __init__(self, benign: str = NONE, benign_options: dict[str, Any] | None = None, **options):
        self.benign = check_choice("vlsbench", "benign", benign, (VLGUARD, NONE))
        self.benign_options = dict(benign_options or {})
        super().__init__(**options)

    @classmethod
    def key_parts(cls, options: dict) -> list[str]:
        return super().key_parts(options) + benign_key_parts(options)

    def single_class_for(self, task: Task) -> str | None:
        return None if self.benign == VLGUARD else UNSAFE

    def _examples(self, task: Task) -> Iterator:
        if self.benign == VLGUARD:
            yield from interleave(self._items(), vlguard_benign(self.name, self.report, self.benign_options))
        else:
            yield from self._items()

    def _items(self) -> Iterator:
        rows = load_json_list(self.annotations)
        for index, row in enumerate(rows):
            where = f"{self.annotations}: item {index}"
            yield self._example(
                require(row, "image_path", where),
                text=require(row, "instruction", where, allow_empty=True),
                label=UNSAFE,
                source_id=str(require(row, "instruction_id", where, (int, str))),
                category=require(row, "category", where),
                meta={key: row.get(key) for key in ("sub_category", "source", "safety_reason")},
            )
