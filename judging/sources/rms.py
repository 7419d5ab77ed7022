"""RMS (this project's dataset) as judge examples: a release directory or a Hub dataset repo (+ revision).

Default release: the repository's committed ``sample_release/``.

Tasks and labels:
- ``query``: every row of the ``pairs`` config is an **unsafe** query (image + text risky together); its
  ``safe_twin_text`` with the same image is a **safe** query (rows with an empty twin give only the unsafe
  example).
- ``response``: rows of ``safe_responses`` are **safe** responses, rows of ``unsafe_responses`` **unsafe**
  ones (the row's own ``label`` field is checked against its config).

Splits are the release's splits (``train`` / ``test``), read with ``datasets.load_dataset(release, config)``.
Images are yielded as datasets stores them, undecoded (``{"bytes", "path"}``: the photo's original bytes), so
reading a release decodes nothing and holds the JPEGs, not their pixels; `eval.judges.images.load_image` and
`recipes.data.load_image` decode them where they are used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from judging.records import QUERY, RESPONSE, JudgeExample, Task
from judging.sources.benchmark_files import BenchmarkReport
from judging.sources.registry import Source, register_source
from rms_dataset import PAIRS, RESPONSE_CONFIGS, SAFE, UNSAFE

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
DEFAULT_RELEASE = Path(__file__).resolve().parents[2] / "sample_release"


class ReleaseError(ValueError):
    """An RMS release cannot be read as training data; the message names the release, config and field."""


@register_source
class RMSSource(Source):
    name = "rms"
    complementarity = True  # the risk is in the image-text pair (eval.audit: text-alone leakage)
    tasks = (QUERY, RESPONSE)
    single_class = None
    splits = ("train", "test")

    def __init__(self, release: str | os.PathLike | None = None, revision: str | None = None):
        self.release = str(release) if release is not None else str(DEFAULT_RELEASE)
        self.revision = revision
        self.report = BenchmarkReport()  # images are embedded in the release: every example has one
        path = Path(self.release).expanduser()
        if path.is_dir():
            if revision is not None:
                raise ReleaseError(f"rms: revision={revision!r} only applies to a Hub dataset id, not {path}")
            self.release = str(path)
        elif not _HUB_ID.fullmatch(self.release):
            raise ReleaseError(f"rms: release {self.release!r} is neither a directory nor a Hub dataset id "
                               "(owner/name); pass release=<release dir or Hub dataset id>")

    def provenance(self) -> dict:
        return {"release": self.release, "revision": self.revision}

    def _rows(self, config: str, split: str) -> list[dict]:
        import datasets

        try:
            loaded = datasets.load_dataset(self.release, config, revision=self.revision)
        except ValueError as error:
            raise ReleaseError(f"rms: cannot read config {config!r} of release {self.release!r}: {error}") from error
        if split not in loaded:
            raise ReleaseError(f"rms: release {self.release!r} config {config!r} has no split {split!r}; "
                               f"it has {sorted(loaded)}")
        table = loaded[split]
        for name, feature in table.features.items():
            if isinstance(feature, datasets.Image):
                table = table.cast_column(name, datasets.Image(decode=False))
        rows = list(table)
        label = table.features.get("label")
        if isinstance(label, datasets.ClassLabel):  # releases store label as ClassLabel(safe, unsafe)
            for row in rows:
                row["label"] = label.int2str(row["label"])
        return rows

    def examples(self, split: str = "train", task: Task = QUERY) -> Iterator[JudgeExample]:
        if task not in self.tasks:
            raise ValueError(f"rms: task {task!r} is not supported; supported: {list(self.tasks)}")
        self.report = BenchmarkReport()
        examples = self._query_examples(split) if task == QUERY else self._response_examples(split)
        for example in examples:
            self.report.n_examples += 1
            self.report.n_images_found += 1
            yield example

    def _field(self, row: dict, name: str, config: str, split: str, index: int):
        value = row.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ReleaseError(f"rms: {self.release} {config}/{split} row {index} (id={row.get('id')!r}): "
                               f"field {name!r} is empty; fix the release (python -m generation validate)")
        return value

    def _query_examples(self, split: str) -> Iterator[JudgeExample]:
        for index, row in enumerate(self._rows(PAIRS, split)):
            image = self._field(row, "image", PAIRS, split, index)
            meta = {"image_id": row.get("image_id"), "pair_id": row["id"]}
            yield JudgeExample(image=image, text=self._field(row, "text", PAIRS, split, index), label=UNSAFE,
                               source=self.name, source_id=row["id"], category=row.get("risk_category") or None,
                               meta=meta)
            twin = (row.get("safe_twin_text") or "").strip()
            if twin:
                yield JudgeExample(image=image, text=twin, label=SAFE, source=self.name, source_id=f"{row['id']}:twin",
                                   meta={**meta, "safe_twin": True})

    def _response_examples(self, split: str) -> Iterator[JudgeExample]:
        for config, label in RESPONSE_CONFIGS.items():
            for index, row in enumerate(self._rows(config, split)):
                if row.get("label") != label:
                    raise ReleaseError(f"rms: {self.release} {config}/{split} row {index} (id={row.get('id')!r}): "
                                       f"label is {row.get('label')!r}, expected {label!r} in {config}")
                yield JudgeExample(
                    image=self._field(row, "image", config, split, index),
                    text=self._field(row, "text", config, split, index),
                    response=self._field(row, "response", config, split, index),
                    label=label, source=self.name, source_id=row["id"],
                    category=row.get("risk_category") or None, meta={"pair_id": row.get("pair_id")},
                )
