"""Safety judges behind one interface: ``Judge.score(examples) -> list[Prediction]``.

Kinds (one module each): ``hf`` (local transformers model + optional LoRA adapter, fast or generative),
``llama-guard`` and ``llavaguard`` (guard models' own prompt/output formats on the HF plumbing), ``api``
(OpenAI-compatible endpoint), callable judges ``python:MODULE:FUNCTION`` (``callable.py``; the rule baselines in
``rules.py``), and the sanity judges ``constant:unsafe``, ``constant:safe``, ``random:SEED``,
``oracle:ACCURACY:SEED`` (``sanity.py``). `make_judge(spec)` builds one from a typed `JudgeSpec`
(``spec.py``; a dict is validated as one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.judges.base import Judge, Prediction
from eval.judges.spec import KINDS, JudgeOptions, JudgeSpec, parse_judge_spec

DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_NEW_TOKENS = {"hf": 32, "llama-guard": 32, "llavaguard": 256}


def make_judge(spec: JudgeSpec | dict[str, Any]) -> Judge:
    """``make_judge({"kind": "hf", "adapter": DIR})``, ``{"kind": "llama-guard", "base_model": ...}``,
    ``{"kind": "api", "model": ..., "base_url": "http://127.0.0.1:8000/v1"}``, ``{"kind": "random:0"}``.
    Raises ``ConfigError`` (a ValueError) naming the bad key."""
    spec = parse_judge_spec(spec)
    from eval.judges.sanity import is_sanity_kind, make_sanity_judge

    if is_sanity_kind(spec.kind):
        return make_sanity_judge(spec.kind)
    from eval.judges.callable import CallableJudge, is_callable_kind

    if is_callable_kind(spec.kind):
        return CallableJudge(spec.kind)
    if spec.kind == "api":
        from eval.judges.api import APIJudge

        return APIJudge(spec.model, spec.base_url, api_key_env=spec.api_key_env,
                        **({"max_tokens": spec.max_new_tokens} if spec.max_new_tokens else {}))
    from eval.judges.hf import HFJudge
    from modelcalls.hf_loading import load_model

    base_model = spec.base_model
    if spec.kind == "llama-guard":
        from eval.judges import llama_guard

        judge_format = llama_guard.LLAMA_GUARD_FORMAT
        base_model = base_model or llama_guard.DEFAULT_MODEL
    elif spec.kind == "llavaguard":
        from eval.judges import llavaguard

        judge_format = llavaguard.llavaguard_format(Path(spec.policy_file).read_text() if spec.policy_file else None)
        base_model = base_model or llavaguard.DEFAULT_MODEL
    else:
        from judging.format import RMS_FORMAT

        judge_format = RMS_FORMAT
    return HFJudge(load_model(base_model, spec.adapter, load_in_4bit=spec.load_in_4bit), mode=spec.scoring_mode,
                   batch_size=spec.batch_size or DEFAULT_BATCH_SIZE,
                   max_new_tokens=spec.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[spec.kind], judge_format=judge_format)


__all__ = ["Judge", "Prediction", "KINDS", "JudgeOptions", "JudgeSpec", "make_judge"]
