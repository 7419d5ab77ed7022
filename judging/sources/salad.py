"""SaLAD (xinyuelou/SaLAD, preview release): 20 real-life image + query items, 10 safe and 10 unsafe.

Annotations: ``data.json`` (list of objects: ``query``, ``category``, ``safety type`` = ``safe``/``unsafe``,
``image``, and ``safety warning`` (unsafe items) or ``safe suggestion`` (safe items); note the spaces in the
field names). Images are in the repo's ``data/image.zip``: extract it and point ``image_root`` there.

Task ``query``: the label is ``safety type`` as given (binary: F1, AUROC, over-refusal on the safe half).
"""

from __future__ import annotations

from collections.abc import Iterator

from judging.records import QUERY, Task
from judging.sources.benchmark_files import AnnotationError, BenchmarkSource, load_json_list, require
from judging.sources.registry import register_source
from rms_dataset import VERDICTS


@register_source
class SaLAD(BenchmarkSource):
    name = "salad"
    tasks = (QUERY,)
    single_class = None
    shared_annotations = ("SaLAD", "data.json")
    annotation_file = "data.json"

    def _examples(self, task: Task) -> Iterator:
        rows = load_json_list(self.annotations)
        for index, row in enumerate(rows):
            where = f"{self.annotations}: item {index}"
            label = require(row, "safety type", where).strip().lower()
            if label not in VERDICTS:
                raise AnnotationError(f"{where}: field 'safety type' must be 'safe' or 'unsafe', got {row['safety type']!r}")
            image = require(row, "image", where)
            yield self._example(
                image,
                text=require(row, "query", where),
                label=label,
                source_id=image,
                category=require(row, "category", where),
                meta={"safety_warning": row.get("safety warning"), "safe_suggestion": row.get("safe suggestion")},
            )
