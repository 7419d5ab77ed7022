"""From shards to a published release: `finalize.py` joins shards (`dedup.py`, `taxonomy.py`, `chart.py`),
`write.py` writes the release directory with its card (`card.py`), `validate.py` checks it, `merge.py` and
`publish.py` are the `merge` and `publish` commands."""
