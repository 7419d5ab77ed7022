"""The engine that runs the steps: `executor.py` runs one shard (`sharding.py` says which images are its) with
fingerprinted checkpoints (`fingerprint.py`, `store.py`, `stamps.py`; `run_stamp.py` skips a whole run that
changed nothing), the run's typed config (`config.py`),
the records passed between steps (`records.py`), the count of model calls (`call_account.py`), and the
locked, never-silently-replaced output directories (`outputs.py`)."""
