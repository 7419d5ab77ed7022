"""The generation pipeline: `pipeline.py` lists the steps (one small module each: ingest, screen, scene,
risks, verify, query, twin, rewrite, respond, check), `executor.py` runs them with fingerprinted
checkpoints (`fingerprint.py`, `store.py`) and quality gates (`gates.py`); `finalize.py` joins shards into a
release (dedup, taxonomy, split)."""
