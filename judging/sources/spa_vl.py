"""SPA-VL (sqrti/SPA-VL, cc-by-4.0): safety preference pairs for training, the harm split for testing.

``train``: the Hub dataset's ``default`` config (``data/train-*.parquet``; columns ``image``, ``question``,
``chosen``, ``rejected``, ``image_name`` as listed in the dataset card's ``dataset_info``). Read from a local
copy of the repo (``data_dir``: the folder holding ``data/``) or from the Hub (``hub_dataset`` +
``revision``) with ``datasets.load_dataset``. The train parquet layout is taken from the dataset card; it
was not checked against the real parquet files here (the Hub is unreachable from this machine).

``test``: the ``harm`` split (265 harmful questions; columns ``image``, ``question``, ``class1..3``). By
default the transcribed 10-item excerpt ``shared/benchmarks/SPA-VL/spa_vl_harm_sample.json`` (a JSON object
keyed by index, images named ``<index>.png``, looked up under ``image_root``); with ``data_dir`` /
``hub_dataset`` the real ``test/harm-*.parquet`` is read instead.

Tasks and labels:
- ``query``: every SPA-VL question is a harmful request -> **unsafe** (single class).
- ``response`` (train only): ``chosen`` -> **safe**, ``rejected`` -> **unsafe**.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from judging.records import QUERY, RESPONSE, JudgeExample, Task
from judging.sources.benchmark_files import (
    AnnotationError,
    BenchmarkReport,
    image_store,
    load_json,
    require,
    resolve_annotations,
    shared_benchmark_path,
)
from judging.sources.registry import Source, register_source
from rms_dataset import SAFE, UNSAFE

HUB_DATASET = "sqrti/SPA-VL"
TRAIN_COLUMNS = ("image", "question", "chosen", "rejected")
HARM_COLUMNS = ("image", "question", "class1", "class2", "class3")


@register_source
class SPAVL(Source):
    name = "spa_vl"
    tasks = (QUERY, RESPONSE)
    single_class = UNSAFE  # the query task and the harm test split are all unsafe
    splits = ("train", "test")

    def __init__(self, data_dir: str | os.PathLike | None = None, hub_dataset: str | None = None,
                 revision: str | None = None, harm_annotations: str | os.PathLike | None = None,
                 image_root: str | os.PathLike | None = None):
        if data_dir is not None and hub_dataset is not None:
            raise ValueError("spa_vl: give data_dir or hub_dataset, not both")
        if revision is not None and hub_dataset is None:
            raise ValueError(f"spa_vl: revision={revision!r} needs hub_dataset (e.g. {HUB_DATASET!r})")
        if data_dir is not None and not Path(data_dir).expanduser().is_dir():
            raise FileNotFoundError(f"spa_vl: data_dir={str(data_dir)!r} is not a folder; point it at a local copy "
                                    f"of {HUB_DATASET} (the folder holding data/ and test/)")
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else None
        self.hub_dataset = hub_dataset
        self.revision = revision
        self.harm_annotations = harm_annotations
        self.harm_images = image_store(self.name, image_root, None, None)
        self.report = BenchmarkReport()

    def single_class_for(self, task: Task) -> str | None:
        return UNSAFE if task == QUERY else None

    def provenance(self) -> dict:
        return {"data_dir": str(self.data_dir) if self.data_dir else None, "hub_dataset": self.hub_dataset,
                "revision": self.revision}

    def examples(self, split: str = "train", task: Task = QUERY) -> Iterator[JudgeExample]:
        if split not in self.splits:
            raise ValueError(f"spa_vl: unknown split {split!r}; supported: {list(self.splits)}")
        if task not in self.tasks:
            raise ValueError(f"spa_vl: task {task!r} is not supported; supported: {list(self.tasks)}")
        self.report = BenchmarkReport()
        if split == "test":
            if task == RESPONSE:
                raise ValueError("spa_vl: the harm test split has no responses; use task='query'")
            if self.data_dir is None and self.hub_dataset is None:
                yield from self._harm_excerpt()
            else:
                yield from self._harm_parquet()
        else:
            yield from self._train(task)

    # ----------------------------------------------------------------------------------------------- parquet

    def _load(self, config: str, pattern: str, split: str, columns: tuple[str, ...]):
        import datasets

        if self.data_dir is not None:
            files = sorted(str(path) for path in self.data_dir.glob(pattern))
            if not files:
                raise AnnotationError(f"spa_vl: no files matching {pattern} under {self.data_dir}")
            table = datasets.load_dataset("parquet", data_files={split: files}, split=split)
            where = f"{self.data_dir}/{pattern}"
        elif self.hub_dataset is not None:
            table = datasets.load_dataset(self.hub_dataset, config, split=split, revision=self.revision)
            where = f"{self.hub_dataset} config {config!r} split {split!r}"
        else:
            raise ValueError("spa_vl: the train split needs data_dir=<local copy of sqrti/SPA-VL> or "
                             f"hub_dataset={HUB_DATASET!r}")
        missing = [column for column in columns if column not in table.column_names]
        if missing:
            raise AnnotationError(f"spa_vl: {where} lacks column(s) {missing}; found {table.column_names}")
        return table, where

    def _train(self, task: Task) -> Iterator[JudgeExample]:
        table, where = self._load("default", "data/train-*.parquet", "train", TRAIN_COLUMNS)
        for index, row in enumerate(table):
            row_where = f"{where} row {index}"
            image = row["image"]
            if image is None:
                raise AnnotationError(f"spa_vl: {row_where}: image is empty")
            question = require(row, "question", row_where)
            source_id = row.get("image_name") or str(index)
            self.report.n_examples += 1
            self.report.n_images_found += 1
            if task == QUERY:
                yield JudgeExample(image=image, text=question, label=UNSAFE, source=self.name,
                                   source_id=f"{index}:{source_id}")
                continue
            for key, label in (("chosen", SAFE), ("rejected", UNSAFE)):
                yield JudgeExample(image=image, text=question, response=require(row, key, row_where), label=label,
                                   source=self.name, source_id=f"{index}:{source_id}:{key}")

    def _harm_parquet(self) -> Iterator[JudgeExample]:
        table, where = self._load("test", "test/harm-*.parquet", "harm", HARM_COLUMNS)
        for index, row in enumerate(table):
            self.report.n_examples += 1
            self.report.n_images_found += 1
            yield JudgeExample(image=row["image"], text=require(row, "question", f"{where} row {index}"),
                               label=UNSAFE, source=self.name, source_id=str(index), category=row.get("class1"),
                               meta={"class2": row.get("class2"), "class3": row.get("class3")})

    # ----------------------------------------------------------------------------------------------- excerpt

    def _harm_excerpt(self) -> Iterator[JudgeExample]:
        path = resolve_annotations(self.name, self.harm_annotations,
                                   shared_benchmark_path("SPA-VL", "spa_vl_harm_sample.json"), "spa_vl_harm_sample.json")
        items = load_json(path)
        if not isinstance(items, dict):
            raise AnnotationError(f"{path}: expected a JSON object keyed by index, got {type(items).__name__}")
        for key, item in items.items():
            where = f"{path}: item {key!r}"
            relative = require(item, "image", where)
            found = self.harm_images.find(relative) if self.harm_images is not None else None
            self.report.n_examples += 1
            meta = {"class2": item.get("class2"), "class3": item.get("class3")}
            if found is None:
                self.report.missing_images.append(relative)
                meta["missing_image"] = relative
            else:
                self.report.n_images_found += 1
            yield JudgeExample(image=found, text=require(item, "question", where), label=UNSAFE, source=self.name,
                               source_id=str(key), category=require(item, "class1", where), meta=meta)
