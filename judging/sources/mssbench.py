"""MSSBench (Multimodal Situational Safety; eric-ai-lab/MSSBench, data on the Hub as ``kzhou35/mssbench``).

Annotations: ``combined.json`` (the shared copy is a transcribed excerpt, ``combined_sample.json``): an object
with lists ``chat`` and ``embodied``. Every record is a pair: the same request is **safe** with the safe image
and **unsafe** with the unsafe image, so labels are balanced by construction.

- chat record: ``safe_image_path``, ``unsafe_image_path``, ``Type`` (category), ``queries`` (list of
  questions). Each query yields two examples (safe image -> safe, unsafe image -> unsafe).
- embodied record: ``safe``, ``unsafe`` (image names), ``category``, ``safe_instruction``,
  ``unsafe_instruction``. Yields (safe image, safe_instruction) -> safe and (unsafe image,
  unsafe_instruction) -> unsafe. With ``paraphrases=True`` every entry of ``safe_instructions`` /
  ``unsafe_instructions`` is used instead.

Options: ``settings`` (default both ``("chat", "embodied")``). Images: ``image_root`` must hold ``chat/`` and
``embodied/`` sub-folders (as the Hub dataset); chat images are also looked for directly under the root.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from judging.records import QUERY, Task, content_id
from judging.sources.benchmark_files import AnnotationError, BenchmarkSource, load_json, require
from judging.sources.registry import register_source
from rms_dataset import SAFE, UNSAFE

SETTINGS = ("chat", "embodied")


@register_source
class MSSBench(BenchmarkSource):
    name = "mssbench"
    complementarity = True  # the risk is in the image-text pair (eval.audit: text-alone leakage)
    tasks = (QUERY,)
    single_class = None
    shared_annotations = ("MSSBench", "combined_sample.json")
    annotation_file = "combined.json"

    def __init__(self, settings: Sequence[str] = SETTINGS, paraphrases: bool = False, **options):
        unknown = [s for s in settings if s not in SETTINGS]
        if unknown or not settings:
            raise ValueError(f"mssbench: settings must be a non-empty subset of {SETTINGS}, got {list(settings)}")
        self.settings = tuple(settings)
        self.paraphrases = paraphrases
        super().__init__(**options)

    def _examples(self, task: Task) -> Iterator:
        data = load_json(self.annotations)
        if not isinstance(data, dict):
            raise AnnotationError(f"{self.annotations}: expected an object with lists 'chat' and 'embodied'")
        for setting in self.settings:
            records = data.get(setting)
            if not isinstance(records, list):
                raise AnnotationError(f"{self.annotations}: top-level field {setting!r} must be a list; "
                                      f"set settings= to the parts the file has")
            reader = self._chat if setting == "chat" else self._embodied
            for index, record in enumerate(records):
                yield from reader(record, f"{self.annotations}: {setting}[{index}]", index)

    def _chat(self, record: dict, where: str, index: int) -> Iterator:
        queries = require(record, "queries", where, list)
        category = require(record, "Type", where)
        images = {SAFE: require(record, "safe_image_path", where), UNSAFE: require(record, "unsafe_image_path", where)}
        for number, query in enumerate(queries):
            if not isinstance(query, str) or not query.strip():
                raise AnnotationError(f"{where}: field 'queries'[{number}] must be a non-empty string, got {query!r}")
            pair = f"chat-{content_id(images[SAFE], images[UNSAFE], query.strip())}"  # stable across files
            for label, image in images.items():
                yield self._example(
                    [f"chat/{image}", image], text=query.strip(), label=label,
                    source_id=f"{pair}-{label}", category=category,
                    meta={"setting": "chat", "intent": record.get("intent"), "pair": pair, "record": index},
                )

    def _embodied(self, record: dict, where: str, index: int) -> Iterator:
        category = require(record, "category", where)
        for label in (SAFE, UNSAFE):
            image = require(record, label, where)
            if self.paraphrases:
                instructions = require(record, f"{label}_instructions", where, list)
            else:
                instructions = [require(record, f"{label}_instruction", where)]
            for number, instruction in enumerate(instructions):
                if not isinstance(instruction, str) or not instruction.strip():
                    raise AnnotationError(f"{where}: instruction {number} for the {label} image must be a "
                                          f"non-empty string, got {instruction!r}")
                yield self._example(
                    f"embodied/{image}", text=instruction.strip(), label=label,
                    source_id=f"embodied-{content_id(image, instruction.strip())}-{label}", category=category,
                    meta={"setting": "embodied", "task": record.get("task"),
                          "pair": f"embodied-{content_id(record[SAFE], record[UNSAFE])}-i{number}", "record": index,
                          "observation": record.get(f"observation_{label}")},
                )
