"""The generation pipeline's steps, one small module per job (ingest, screen, scene, risks, query, verify,
respond, dedup, split, finalise). `generation.run` chains them; every step's output is checkpointed."""
