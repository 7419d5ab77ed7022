"""Fingerprints of step checkpoints (distilabel-style signatures).

A step's checkpoint file is ``steps/<step>-<fingerprint>.jsonl``, where the fingerprint hashes everything
that determines the step's answers:

* the call: its name, the template's version and a hash of the template text, max_tokens and temperature,
  and whether verdicts are scored (log-odds);
* the role's backend spec (backend, model, revision, dtype, sampling options, ...) minus the keys that only
  say how to reach or pace the model (``OPERATIONAL_KEYS``: URL, key variable, headers, concurrency, batch
  size, timeouts, retries), so changing ``concurrency`` or a server address reuses every answer;
* the step's own parameters (``ModelStep.params``: proposals per image, exemplars, the gates, ...);
* the code that turns the step's answers into records (``code_digest``: the source of the step's and the
  call's classes and their bases in this package, the gates, the JSON parser), so a changed parser or gate
  never leaves records it would now refuse in a reused checkpoint (the answers themselves come back from
  the call cache, free: only parsing is redone);
* the fingerprint of the step before it (which chains every step upstream, and ingest's chains the input
  files' content, the ingest options and the base release).

Changing one of them re-runs exactly that step and what follows it (answers whose requests did not
change come back from the call cache, free); an old checkpoint stays on disk, so switching back reuses it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # generation/ and modelcalls/ live here
# Modules every step's parsing goes through, whatever its classes: the gates and the tolerant JSON parser.
SHARED_PARSING = ("generation.steps.gates", "modelcalls.json_parse")

OPERATIONAL_KEYS = frozenset({
    "base_url", "api_key_env", "headers", "max_concurrency", "batch_size", "timeout_s", "max_retries",
    "retry_base_delay_s", "retry_max_delay_s", "delay_s", "eject_after", "eject_for_s",
})


def digest(payload: Any) -> str:
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def answer_spec(role_spec: dict[str, Any]) -> dict[str, Any]:
    """The part of a role's backend spec that can change its answers."""
    return {key: value for key, value in role_spec.items() if key not in OPERATIONAL_KEYS}


def answer_digest(role_spec: dict[str, Any]) -> str:
    """Short hash of `answer_spec`, added to the call's template_version so that the call cache, keyed by
    model id, never serves an answer of another revision or dtype of the same model id."""
    return digest(answer_spec(role_spec))[:12]


@functools.lru_cache(maxsize=None)
def _source_digest(paths: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(Path(path).relative_to(PACKAGE_ROOT)).encode())
        digest.update(Path(path).read_bytes().replace(b"\r\n", b"\n"))  # a Windows checkout hashes alike
    return digest.hexdigest()


def code_files(*objects) -> tuple[str, ...]:
    """The source files that define the classes of ``objects`` (and their bases) inside this repository,
    plus ``SHARED_PARSING``: what parses and gates a step's answers."""
    modules = {cls.__module__ for obj in objects for cls in type(obj).__mro__} | set(SHARED_PARSING)
    paths = set()
    for name in modules:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path and Path(path).resolve().is_relative_to(PACKAGE_ROOT):
            paths.add(str(Path(path).resolve()))
    return tuple(sorted(paths))


def code_digest(*objects) -> str:
    """sha256 of ``code_files(*objects)``."""
    return _source_digest(code_files(*objects))


def step_payload(step, call, role_spec: dict[str, Any], config, upstream: str) -> dict[str, Any]:
    return {
        "call": call.name,
        "template": {"version": call.prompt.version, "sha256": call.prompt.digest},
        "sampling": {"max_tokens": call.max_tokens, "temperature": call.temperature,
                     "scored": bool(getattr(call, "scored", False))},
        "role": answer_spec(role_spec),
        "params": step.params(config),
        "code": code_digest(step, call),
        "upstream": upstream,
    }


def modules_digest(*names: str) -> str:
    """sha256 of the source of the named modules (imported): the code a whole-output step runs (stamps.py)."""
    return _source_digest(tuple(sorted(str(Path(sys.modules[name].__file__).resolve()) for name in names)))
