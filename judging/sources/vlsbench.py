"""VLSBench (AI45Lab/VLSBench): 2241 risky images paired with innocuous-looking questions; every item is
**unsafe** (single class, scored with a detection rate).

Annotations: ``data.json`` (list of objects: ``instruction_id``, ``instruction``, ``image_path`` such as
``imgs/0.png``, ``category``, ``sub_category``, ``source``, ``image_description``, ``safety_reason``).
Images are in ``imgs.tar`` of the Hub dataset ``Foreshhh/vlsbench``: extract it and point ``image_root`` at
the folder that contains ``imgs/``.

One published item (``instruction_id`` 1685) has an empty ``instruction``: the request is in the image. It is
kept with ``text=""`` (the count stays 2241, as published).
"""

from __future__ import annotations

from collections.abc import Iterator

from judging.records import QUERY, Task
from judging.sources.benchmark_files import BenchmarkSource, load_json_list, require
from judging.sources.registry import register_source
from rms_dataset import UNSAFE


@register_source
class VLSBench(BenchmarkSource):
    name = "vlsbench"
    tasks = (QUERY,)
    single_class = UNSAFE
    shared_annotations = ("VLSBench", "data.json")
    annotation_file = "data.json"

    def _examples(self, task: Task) -> Iterator:
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
