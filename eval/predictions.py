"""Per-item predictions in the one call cache (`modelcalls.CallCache`), content-addressed: a cached
prediction is reused only when everything that determined it is identical.

Key (`prediction_key`) = sha256 over the judge id (a hash of the judge's fingerprint: base model and
revision or weights fingerprint, adapter weights hash, format version, mode, decoding parameters, label
tokens), the exact prompt text the judge renders for the item, the sha256 of the image bytes (or "no
image"), the task, the label set, and the item's source, id and gold label. Scoring the same benchmark with
images after scoring it without, with different options (paraphrases, subsets), after a response was
regenerated or with a retrained adapter therefore never reuses a prediction made for other content; a rerun
of the same cell makes no model call.

File: ``<cache_dir>/calls.sqlite`` (`CACHE_FILE`), shared by every judge and benchmark scored into that
folder (and by `eval.respond`'s answers). Predictions are committed after every chunk of ``chunk_size``
items (each source and task chunked on its own, in order), so an interrupted evaluation resumes and only
scores what is missing; several processes on one machine (data-parallel ranks) can share the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eval.judges.base import Judge, Prediction
from eval.judges.images import image_sha256
from judging.records import JudgeExample
from modelcalls import CallCache, ChatResponse

log = logging.getLogger(__name__)

CACHE_FILE = "calls.sqlite"


@dataclass(frozen=True)
class ScoredItem:
    example: JudgeExample
    prediction: Prediction


def call_cache(cache_dir: Path | str) -> CallCache:
    """The eval call cache in ``cache_dir`` (created on first use)."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return CallCache(Path(cache_dir) / CACHE_FILE)


def prediction_key(judge: Judge, example: JudgeExample, judge_id: str | None = None) -> str:
    """The content address of one prediction (see the module docstring for what enters it)."""
    payload = {
        "judge": judge_id or judge.judge_id,
        "prompt": judge.rendered_prompt(example),
        "image": image_sha256(example.image),
        "task": example.task,
        "labels": list(judge.labels),
        "item": [example.source, str(example.source_id), example.label],
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _check_unique(examples: list[JudgeExample]) -> None:
    seen: set[tuple[str, str, str]] = set()
    for example in examples:
        item = (example.source, str(example.source_id), example.task)
        if item in seen:
            raise ValueError(f"{example.source}: source_id {example.source_id!r} occurs twice ({example.task} task); "
                             "ids must be unique within a source")
        seen.add(item)


def score_cached(
    judge: Judge,
    examples: list[JudgeExample],
    cache_dir: Path | str,
    *,
    chunk_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> list[ScoredItem]:
    """Score `examples` with `judge`, reusing cached predictions; returns one ScoredItem per example, in order."""
    if not examples:
        return []
    _check_unique(examples)
    judge_id = judge.judge_id
    keys = [prediction_key(judge, example, judge_id) for example in examples]
    results: list[Prediction | None] = [None] * len(examples)
    with call_cache(cache_dir) as cache:
        hits = cache.get_many(keys)
        for index, key in enumerate(keys):
            if key in hits:
                results[index] = Prediction.from_dict(json.loads(hits[key].text))
        missing = [index for index, result in enumerate(results) if result is None]
        if missing:
            log.info("%s: %d cached, scoring %d", cache.path, len(examples) - len(missing), len(missing))
        groups: dict[tuple[str, str], list[int]] = {}  # each (source, task) in chunks of its own, in order
        for index in missing:
            groups.setdefault((examples[index].source, examples[index].task), []).append(index)
        for group in groups.values():
            for start in range(0, len(group), chunk_size):
                chunk = group[start : start + chunk_size]
                predictions = judge.score([examples[index] for index in chunk])
                if len(predictions) != len(chunk):
                    raise RuntimeError(f"judge {judge_id} returned {len(predictions)} predictions for {len(chunk)} items")
                for index, prediction in zip(chunk, predictions, strict=True):
                    answer = ChatResponse(json.dumps(prediction.to_dict(), ensure_ascii=False))
                    cache.put(keys[index], answer, call_name=f"judge:{judge.name}", model=judge_id)
                    results[index] = prediction
                cache.flush()  # a chunk scored is a chunk kept, whatever happens next
                if progress:
                    progress(sum(result is not None for result in results), len(examples))
    return [ScoredItem(example, prediction) for example, prediction in zip(examples, results, strict=True)]
