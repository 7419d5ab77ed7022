"""The pipeline's steps: `pipeline.py` lists them (one small module each: ingest, screen, scene, risks, verify,
query, twin, rewrite, respond, check), built on `base.py` (model steps and their calls), with the quality gates
(`gates.py`) and the coverage sampler that picks risks (`sampler.py`). `generation.engine` runs them."""
