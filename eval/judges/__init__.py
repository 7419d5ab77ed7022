"""Safety judges behind one interface: ``Judge.score(examples) -> list[Prediction]``.

Kinds (one module each): ``hf`` (local transformers model + optional LoRA adapter, fast or generative),
``llama_guard`` and ``llavaguard`` (guard models' own prompt/output formats on the HF plumbing), ``api``
(OpenAI-compatible endpoint), callable judges ``python:MODULE:FUNCTION`` (``callable.py``; the rule baselines in
``rules.py``), and the sanity judges ``constant:unsafe``, ``constant:safe``, ``random:SEED``,
``oracle:ACCURACY:SEED`` (``sanity.py``). `make_judge(spec)` builds one from a dict (a grid YAML block or CLI flags).
"""

from __future__ import annotations

from typing import Any

from eval.judges.base import Judge, Prediction

KINDS = ("hf", "llama-guard", "llavaguard", "api")


def make_judge(spec: dict[str, Any]) -> Judge:
    """``{"kind": "hf", "base_model": "tiny-llava", "adapter": DIR, "mode": "fast", "batch_size": 8}``,
    ``{"kind": "llama-guard", "base_model": ...}``, ``{"kind": "llavaguard", "policy_file": ...}``,
    ``{"kind": "api", "model": ..., "base_url": "http://127.0.0.1:8000/v1"}``."""
    spec = dict(spec)
    kind = spec.pop("kind", "hf")
    from eval.judges.sanity import is_sanity_kind, make_sanity_judge

    if is_sanity_kind(kind):  # constant:unsafe, constant:safe, random:SEED, oracle:ACCURACY:SEED
        return make_sanity_judge(kind, **spec)
    from eval.judges.callable import CallableJudge, is_callable_kind

    if is_callable_kind(kind):
        given = sorted(key for key in ("base_model", "adapter", "model", "base_url") if spec.get(key))
        if given:
            raise ValueError(f"judge kind {kind!r} is a callable judge and takes no {', '.join(given)}")
        return CallableJudge(kind)
    if kind == "api":
        from eval.judges.api import APIJudge

        return APIJudge(**spec)
    from eval.judges.hf import HFJudge
    from modelcalls.hf_loading import load_model

    base_model = spec.pop("base_model", None)
    adapter = spec.pop("adapter", None)
    load_in_4bit = spec.pop("load_in_4bit", False)
    if kind == "llama-guard":
        from eval.judges import llama_guard

        spec.setdefault("mode", "generative")
        spec["judge_format"] = llama_guard.LLAMA_GUARD_FORMAT
        base_model = base_model or llama_guard.DEFAULT_MODEL
    elif kind == "llavaguard":
        from pathlib import Path

        from eval.judges import llavaguard

        policy_file = spec.pop("policy_file", None)
        spec.setdefault("mode", "generative")
        spec.setdefault("max_new_tokens", 256)
        spec["judge_format"] = llavaguard.llavaguard_format(Path(policy_file).read_text() if policy_file else None)
        base_model = base_model or llavaguard.DEFAULT_MODEL
    elif kind != "hf":
        raise ValueError(f"unknown judge kind {kind!r}; choose one of {', '.join(KINDS)}, a sanity kind or "
                         "python:MODULE:FUNCTION")
    return HFJudge(load_model(base_model, adapter, load_in_4bit=load_in_4bit), **spec)


__all__ = ["Judge", "Prediction", "KINDS", "make_judge"]
