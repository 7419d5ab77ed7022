"""Per-item predictions on disk, content-addressed: a cached prediction is reused only when everything
that determined it is identical.

Key (`prediction_key`) = sha256 over the judge id (a hash of the judge's fingerprint: base model and
revision, adapter weights hash, format version, mode, decoding parameters, label tokens), the exact
prompt text the judge renders for the item, the sha256 of the image bytes (or "no image"), the task, the
label set, and the item's source, id and gold label. Scoring the same benchmark with images after
scoring it without, with different options (paraphrases, subsets), or after a response was regenerated
therefore never reuses a prediction made for other content.

File: ``<cache_dir>/<judge_id>/<source>__<task>.jsonl``, one JSON line per prediction, appended as each
chunk is scored, so an interrupted evaluation resumes and only scores what is missing. A truncated last
line (the process died while writing it) is dropped and re-scored; any other malformed line is an error
naming file and line. Lines without a ``key`` (written before keys were content-addressed) are never reused.
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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredItem:
    example: JudgeExample
    prediction: Prediction


def predictions_path(cache_dir: Path, judge_id: str, source: str, task: str) -> Path:
    return Path(cache_dir) / judge_id / f"{source}__{task}.jsonl"


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


def read_predictions(path: Path, judge_id: str) -> dict[str, Prediction]:
    """Cached predictions by content key. Repairs a truncated final line in place."""
    path = Path(path)
    if not path.exists():
        return {}
    raw = path.read_text(encoding="utf-8")
    lines = raw.split("\n")
    cached: dict[str, Prediction] = {}
    good_length = 0
    unkeyed = 0
    for number, line in enumerate(lines, start=1):
        is_last = number == len(lines)
        if not line.strip():
            good_length += len(line) + (0 if is_last else 1)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if is_last:  # died mid-write: no trailing newline on a partial record
                log.warning("%s: dropping a truncated last line; that item will be scored again", path)
                path.write_text(raw[:good_length], encoding="utf-8")
                break
            raise ValueError(
                f"{path}:{number}: not valid JSON; the prediction cache is corrupt. Delete the line (the item "
                "will be re-scored) or the file."
            ) from None
        if record.get("judge_id") != judge_id:
            raise ValueError(
                f"{path}:{number}: written by judge {record.get('judge_id')!r}, expected {judge_id!r}; "
                "do not mix judges in one cache file"
            )
        if record.get("key"):
            cached[record["key"]] = Prediction.from_dict(record)
        else:
            unkeyed += 1
        good_length += len(line) + (0 if is_last else 1)
    if unkeyed:
        log.warning("%s: %d predictions without a content key (an older cache) are not reused", path, unkeyed)
    return cached


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
    judge_id = judge.judge_id
    seen: set[tuple[str, str, str]] = set()
    for example in examples:
        item = (example.source, str(example.source_id), example.task)
        if item in seen:
            raise ValueError(f"{example.source}: source_id {example.source_id!r} occurs twice ({example.task} task); "
                             "ids must be unique within a source")
        seen.add(item)
    keys = [prediction_key(judge, example, judge_id) for example in examples]
    by_file: dict[Path, list[int]] = {}
    for index, example in enumerate(examples):
        by_file.setdefault(predictions_path(Path(cache_dir), judge_id, example.source, example.task), []).append(index)

    results: list[Prediction | None] = [None] * len(examples)
    for path, indices in by_file.items():
        cached = read_predictions(path, judge_id)
        missing = []
        for index in indices:
            hit = cached.get(keys[index])
            if hit is None:
                missing.append(index)
            else:
                results[index] = hit
        if missing:
            log.info("%s: %d cached, scoring %d", path, len(indices) - len(missing), len(missing))
        path.parent.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(missing), chunk_size):
            chunk = missing[start : start + chunk_size]
            predictions = judge.score([examples[index] for index in chunk])
            if len(predictions) != len(chunk):
                raise RuntimeError(f"judge {judge_id} returned {len(predictions)} predictions for {len(chunk)} items")
            with open(path, "a", encoding="utf-8") as handle:
                for index, prediction in zip(chunk, predictions, strict=True):
                    example = examples[index]
                    record = {"key": keys[index], "judge_id": judge_id, "source": example.source,
                              "source_id": str(example.source_id), "task": example.task, **prediction.to_dict()}
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    results[index] = prediction
            if progress:
                progress(sum(result is not None for result in results), len(examples))
    return [ScoredItem(example, prediction) for example, prediction in zip(examples, results, strict=True)]
