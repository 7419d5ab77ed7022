"""VLSU (apple/ml-vlsu): image + text prompts graded separately for the image alone, the text alone and the
combination. The shared copy is a transcribed 21-row excerpt (``VLSU_sample21.csv``); the full ``VLSU.csv`` has
the same columns.

Label: ``consensus_combined_grade`` (the grade of the image + text together). ``safe`` and ``unsafe`` map to
themselves. ``borderline`` and ``not_sure`` each have their own option:

- ``borderline="safe"`` (default) | ``"unsafe"`` | ``"exclude"``. The VLSU authors (Palaskar et al., 2025,
  arXiv 2510.18214) separate "clearly unsafe content from borderline cases", which "deserve engagement":
  refusing them is the over-blocking they measure. A query judge that flags a borderline request is
  therefore wrong, so borderline counts as safe.
- ``not_sure="exclude"`` (default) | ``"unsafe"`` | ``"safe"`` (annotators could not decide: no gold label).

Excluded rows are counted in ``source.report.excluded`` (keys ``"borderline"`` / ``"not_sure"``), never
silently dropped. Category: ``combined_category`` on unsafe rows only (a row labelled safe has no harm
category, whatever its grade); the grade and the published category stay in ``meta`` (``combined_grade``,
``combined_category``) with the single-modality grades.

Images are not distributed (only ``web_path`` URLs). Put downloaded images in ``image_root`` named
``<uuid>.<jpg|jpeg|png|webp>`` or by the URL's file name.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote, urlparse

from judging.records import QUERY, Task
from judging.sources.benchmark_files import AnnotationError, BenchmarkSource, read_csv, require
from judging.sources.registry import register_source
from rms_dataset import SAFE, UNSAFE

COLUMNS = ("prompt", "image_grade", "consensus_text_grade", "consensus_combined_grade", "combined_category",
           "web_path", "uuid")
UNCERTAIN_GRADES = ("borderline", "not_sure")
UNCERTAIN_CHOICES = ("exclude", SAFE, UNSAFE)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


def clean_prompt(prompt: str) -> str:
    """VLSU wraps most prompts in single quotes inside the CSV field; drop that one outer pair."""
    prompt = prompt.strip()
    if len(prompt) >= 2 and prompt[0] == prompt[-1] == "'":
        prompt = prompt[1:-1].strip()
    return prompt


def image_candidates(uuid: str, web_path: str) -> list[str]:
    names = [uuid + extension for extension in IMAGE_EXTENSIONS]
    basename = unquote(urlparse(web_path).path.rsplit("/", 1)[-1]) if web_path else ""
    return names + ([basename] if basename else [])


@register_source
class VLSU(BenchmarkSource):
    name = "vlsu"
    complementarity = True  # the risk is in the image-text pair (eval.audit: text-alone leakage)
    tasks = (QUERY,)
    single_class = None
    shared_annotations = ("VLSU", "VLSU_sample21.csv")
    annotation_file = "VLSU.csv"

    def __init__(self, borderline: str = SAFE, not_sure: str = "exclude", **options):
        for option, value in (("borderline", borderline), ("not_sure", not_sure)):
            if value not in UNCERTAIN_CHOICES:
                raise ValueError(f"vlsu: {option}={value!r}; choose one of {UNCERTAIN_CHOICES}")
        self.uncertain = {"borderline": borderline, "not_sure": not_sure}
        super().__init__(**options)

    def _examples(self, task: Task) -> Iterator:
        for line, row in enumerate(read_csv(self.annotations, COLUMNS), start=2):
            where = f"{self.annotations}: line {line}"
            grade = require(row, "consensus_combined_grade", where).strip().lower()
            if grade in UNCERTAIN_GRADES:
                label = self.uncertain[grade]
                if label == "exclude":
                    self.report.excluded[grade] += 1
                    continue
            elif grade in (SAFE, UNSAFE):
                label = grade
            else:
                raise AnnotationError(f"{where}: field 'consensus_combined_grade' must be one of "
                                      f"safe/unsafe/borderline/not_sure, got {row['consensus_combined_grade']!r}")
            uuid = require(row, "uuid", where)
            yield self._example(
                image_candidates(uuid, row.get("web_path") or ""),
                text=clean_prompt(require(row, "prompt", where)),
                label=label,
                source_id=uuid,
                category=(row.get("combined_category") or None) if label == UNSAFE else None,
                meta={"combined_grade": grade, "combined_category": row.get("combined_category") or None,
                      "image_grade": row.get("image_grade"),
                      "text_grade": row.get("consensus_text_grade"), "web_path": row.get("web_path")},
            )
