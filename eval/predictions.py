"""Per-item predictions on disk: one JSONL line per (judge id, source, source_id, task), appended as each
chunk is scored, so an interrupted evaluation resumes and only scores the items still missing.

File: ``<cache_dir>/<judge_id>/<source>__<task>.jsonl``. A truncated last line (the process died while
writing it) is dropped and re-scored; any other malformed line is an error naming file and line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eval.judges.base import Judge, Prediction
from judging.records import JudgeExample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredItem:
    example: JudgeExample
    prediction: Prediction


def predictions_path(cache_dir: Path, judge_id: str, source: str, task: str) -> Path:
    return Path(cache_dir) / judge_id / f"{source}__{task}.jsonl"


def _key(source_id: str, task: str) -> tuple[str, str]:
    return (str(source_id), task)


def read_predictions(path: Path, judge_id: str) -> dict[tuple[str, str], Prediction]:
    """Cached predictions keyed by (source_id, task). Repairs a truncated final line in place."""
    path = Path(path)
    if not path.exists():
        return {}
    raw = path.read_text(encoding="utf-8")
    lines = raw.split("\n")
    cached: dict[tuple[str, str], Prediction] = {}
    good_length = 0
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
        cached[_key(record["source_id"], record["task"])] = Prediction.from_dict(record)
        good_length += len(line) + (0 if is_last else 1)
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
    by_file: dict[Path, list[int]] = {}
    for index, example in enumerate(examples):
        by_file.setdefault(predictions_path(Path(cache_dir), judge_id, example.source, example.task), []).append(index)
    seen: set[tuple[str, str, str]] = set()
    for example in examples:
        key = (example.source, str(example.source_id), example.task)
        if key in seen:
            raise ValueError(f"{example.source}: source_id {example.source_id!r} occurs twice ({example.task} task); "
                             "ids must be unique within a source for predictions to be cached")
        seen.add(key)

    results: list[Prediction | None] = [None] * len(examples)
    for path, indices in by_file.items():
        cached = read_predictions(path, judge_id)
        missing = []
        for index in indices:
            hit = cached.get(_key(examples[index].source_id, examples[index].task))
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
                    record = {"judge_id": judge_id, "source": example.source, "source_id": str(example.source_id),
                              "task": example.task, **prediction.to_dict()}
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    results[index] = prediction
            if progress:
                progress(sum(result is not None for result in results), len(examples))
    return [ScoredItem(example, prediction) for example, prediction in zip(examples, results, strict=True)]
