"""Data-parallel scoring under ``accelerate launch``: every process loads the judge, scores its share of each
benchmark's items, and rank 0 gathers the predictions
(``accelerate.utils.gather_object``) and writes the cell exactly as one process would: the same result, the
same ``samples.jsonl`` and the same prediction cache, because rank 0 scores the cell through the ordinary
cache path with a judge that answers from the gathered predictions (`GatheredJudge`).

The share is block-cyclic in the prediction cache's chunks: one process hands ``judge.score`` the items of
each (source, task) in chunks of 32, and chunk c of each goes to rank ``c % world``. Each rank therefore calls the judge on exactly
the chunks one process would, and a judge whose outputs depend on its batch (an HF judge pads and groups a
chunk by length) gives the same numbers, not numbers equal to the last digits only. A benchmark of fewer than
``32 * world`` items leaves some ranks idle.

`accelerate launch --num_processes 2 [--cpu] -m eval.score --benchmarks siuo,mssbench ... --out DIR`

Each rank keeps its slice's predictions in its own cache, ``<cache_dir>/ranks/<rank>-of-<world>``, so an
interrupted parallel run resumes per rank; the merged cache in ``<cache_dir>`` is what a later single-process
run reuses. A run that is not launched by ``accelerate launch`` (or ``torchrun``) never imports accelerate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.judges.base import Judge, Prediction
from eval.predictions import score_cached
from judging.records import JudgeExample

CHUNK = score_cached.__kwdefaults__["chunk_size"]  # the items one process hands to judge.score at a time


@dataclass(frozen=True)
class Ranks:
    """This process's place in a launched run (``accelerate.PartialState``)."""

    index: int
    world: int

    @property
    def is_main(self) -> bool:
        return self.index == 0


def launched_ranks() -> Ranks | None:
    """The run's ranks when launched with several processes (``WORLD_SIZE`` > 1), else None. Initialises the
    process group through accelerate (gloo on CPU, nccl on GPUs) and pins each rank to its own GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # a machine without GPUs: gloo over CPU processes
    if state.device.type == "cuda":
        torch.cuda.set_device(state.device)  # "cuda" in the model loaders then means this rank's GPU
    return Ranks(index=state.process_index, world=state.num_processes)


def finish(ranks: Ranks | None) -> None:
    """End a launched run cleanly: every rank waits for rank 0 to write its cells, then leaves the process
    group (a rank that exits earlier aborts the others' gloo connections)."""
    if ranks is None:
        return
    from accelerate import PartialState

    state = PartialState()
    state.wait_for_everyone()
    state.destroy_process_group()


def item_key(example: JudgeExample) -> tuple[str, str, str]:
    """What names an item within a cell (unique: `eval.predictions.score_cached` checks it)."""
    return (example.source, str(example.source_id), example.task)


def rank_share(examples: list[JudgeExample], ranks: Ranks) -> list[JudgeExample]:
    """This rank's items, in order: of each (source, task), as `score_cached` groups them, the chunks ``c``
    with ``c % world == rank``."""
    seen: dict[tuple[str, str], int] = {}
    share = []
    for example in examples:
        group = (example.source, example.task)
        position = seen[group] = seen.get(group, -1) + 1
        if (position // CHUNK) % ranks.world == ranks.index:
            share.append(example)
    return share


def score_slice(judge: Judge, examples: list[JudgeExample], cache_dir: Path | str,
                ranks: Ranks) -> dict[tuple[str, str, str], Prediction] | None:
    """Score this rank's share and gather every rank's predictions; rank 0 gets them all by `item_key`,
    the other ranks get None. Every rank must call this for every cell, in the same order."""
    from accelerate.utils import gather_object

    rank_cache = Path(cache_dir) / "ranks" / f"{ranks.index}-of-{ranks.world}"
    shard = rank_share(examples, ranks)
    scored = [(item_key(item.example), item.prediction.to_dict())
              for item in score_cached(judge, shard, rank_cache, chunk_size=CHUNK)]
    gathered = gather_object(scored)
    if not ranks.is_main:
        return None
    return {key: Prediction.from_dict(prediction) for key, prediction in gathered}


class GatheredJudge(Judge):
    """The launched judge as rank 0 sees it after the gather: the same id, description and prompts, and
    answers from the gathered predictions, so the cell is written exactly as by one process."""

    def __init__(self, judge: Judge, predictions: dict[tuple[str, str, str], Prediction]):
        self.judge = judge
        self.predictions = predictions
        self.name = judge.name

    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        return [self.predictions[item_key(example)] for example in examples]

    def describe(self) -> dict[str, Any]:
        return self.judge.describe()

    def rendered_prompt(self, example: JudgeExample) -> str:
        return self.judge.rendered_prompt(example)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.judge.labels

    @property
    def judge_id(self) -> str:
        return self.judge.judge_id

    def __getattr__(self, name: str) -> Any:  # reads_images, loaded, format, ...: the launched judge's
        if name in ("judge", "predictions"):
            raise AttributeError(name)
        return getattr(self.judge, name)
