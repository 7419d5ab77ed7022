"""Rewrite: the query -> twin -> verify loop. Every candidate gets up to ``1 + max_rewrites`` attempts; a
``Retry`` from a step (the verifier's reasons) sends it round again with the reasons in its prompts, and
once the budget is spent it is rejected with the last reasons. The executor runs the sub-steps; their
checkpoints are keyed by the fingerprint of the whole loop (a later attempt depends on all three calls)."""

from __future__ import annotations

from generation.engine.records import VERIFY


class Rewrite:
    name = "rewrite"
    stage = VERIFY

    def __init__(self, *steps):
        self.steps = steps

    def rounds(self, config) -> int:
        return config.max_rewrites + 1

    def exhausted(self, attempts: int, config, failures) -> str:
        return (f"rewrite budget exhausted after {attempts} attempt(s) (max_rewrites={config.max_rewrites}); "
                f"last failure: {'; '.join(failures)}")
