"""The one model-call layer, shared by generation and eval: backends, the call cache, prompt()+parse() calls and the runner.

* ``base``: the request/response records, the ``Backend`` protocol and ``make_backend(spec)``.
* ``call``: ``ModelCall`` (one model call = ``request()`` + ``parse()``), ``run_calls`` (the concurrent runner).
* ``cache``: ``CallCache``, the SQLite cache of model answers, group-committed (a rerun resumes for free);
  ``cache_merge``: join the caches of several shards (``python -m modelcalls.cache_merge``).
* ``json_parse``: ``parse_json`` tolerant extraction of a JSON value from model text.
* Backends: ``openai_backend`` (any OpenAI-compatible server, or several replicas of it: ``replicas``),
  ``transformers_backend`` (in-process; its loading, weight fingerprints, adapter metadata, token utilities
  and batching in ``hf_loading``, ``hf_fingerprint``, ``judge_metadata``, ``hf_tokens``, ``hf_batching``),
  ``scripted_backend`` (canned answers and injected failures, for tests).
"""

from modelcalls.base import Backend, BackendError, ChatRequest, ChatResponse, Usage, make_backend
from modelcalls.cache import CallCache
from modelcalls.call import CallResult, ModelCall, ParseError, Progress, run_calls, run_calls_sync

__all__ = [
    "Backend",
    "BackendError",
    "CallCache",
    "CallResult",
    "ChatRequest",
    "ChatResponse",
    "ModelCall",
    "ParseError",
    "Progress",
    "Usage",
    "make_backend",
    "run_calls",
    "run_calls_sync",
]
