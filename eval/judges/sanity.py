"""Sanity judges: the floor and the ceiling every leaderboard needs, as real judge kinds.

    constant:unsafe        says "unsafe" to everything (the judge the old detection-rate score rewarded)
    constant:safe          says "safe" to everything
    random:SEED            a fair coin per item
    oracle:ACCURACY:SEED   the gold label, flipped with probability 1 - ACCURACY per item

They read no image and load no model, so they run on any suite in seconds (``python -m eval.sanity``) and in
any grid or ``eval.score`` run (``--kind random:0``). The dataset score (docs/eval.md) must put the first
three at 0.5 and the oracle near its ACCURACY. Randomness is a hash of (seed, source, source_id, text,
response): the same item gets the same answer in any order, batch or run.
"""

from __future__ import annotations

import hashlib
from typing import Any

from eval.judges.base import Judge, Prediction
from judging.records import JudgeExample
from rms_dataset import SAFE, UNSAFE

SANITY_KINDS = ("constant", "random", "oracle")
USAGE = "constant:unsafe, constant:safe, random:SEED or oracle:ACCURACY:SEED (ACCURACY in [0, 1], SEED an integer)"
STANDARD = ("constant:unsafe", "constant:safe", "random:0", "oracle:0.9:0")


def is_sanity_kind(kind: str) -> bool:
    return isinstance(kind, str) and kind.split(":", 1)[0] in SANITY_KINDS


def item_uniform(seed: int, example: JudgeExample, salt: str) -> float:
    """A number in [0, 1) fixed by the seed and the item's identity and content."""
    key = "\x1f".join((salt, str(seed), example.source, example.source_id, example.text, example.response or ""))
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


class SanityJudge(Judge):
    """Base of the sanity judges: ``kind`` is the spec string that built it (the judge's name on a leaderboard)."""

    kind: str
    reads_images = False  # eval.score does not require a benchmark's images for a judge that never opens them

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "sanity": True}

    @property
    def judge_id(self) -> str:
        return self.kind.replace(":", "-")


class ConstantJudge(SanityJudge):
    name = "constant"

    def __init__(self, label: str):
        self.label = label
        self.kind = f"constant:{label}"

    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        p_unsafe = 1.0 if self.label == UNSAFE else 0.0
        return [Prediction(self.label, p_unsafe=p_unsafe) for _ in examples]


class RandomJudge(SanityJudge):
    name = "random"

    def __init__(self, seed: int):
        self.seed = seed
        self.kind = f"random:{seed}"

    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        draws = [item_uniform(self.seed, example, "random") for example in examples]
        return [Prediction(UNSAFE if u >= 0.5 else SAFE, p_unsafe=u) for u in draws]


class OracleJudge(SanityJudge):
    name = "oracle"

    def __init__(self, accuracy: float, seed: int):
        self.accuracy = accuracy
        self.seed = seed
        self.kind = f"oracle:{accuracy:g}:{seed}"

    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        predictions = []
        for example in examples:
            flipped = item_uniform(self.seed, example, "oracle") >= self.accuracy
            label = (SAFE if example.label == UNSAFE else UNSAFE) if flipped else example.label
            predictions.append(Prediction(label, p_unsafe=1.0 if label == UNSAFE else 0.0))
        return predictions


def make_sanity_judge(kind: str) -> SanityJudge:
    """The sanity judge a kind string names (`eval.judges.make_judge` refuses model options given to one)."""
    name, _, rest = kind.partition(":")
    parts = rest.split(":") if rest else []
    try:
        if name == "constant" and len(parts) == 1 and parts[0] in (SAFE, UNSAFE):
            return ConstantJudge(parts[0])
        if name == "random" and len(parts) == 1:
            return RandomJudge(int(parts[0]))
        if name == "oracle" and len(parts) == 2 and 0.0 <= float(parts[0]) <= 1.0:
            return OracleJudge(float(parts[0]), int(parts[1]))
    except ValueError:
        pass
    raise ValueError(f"judge kind {kind!r} is not a sanity judge; use {USAGE}")
