"""Registry of dataset sources (training datasets and benchmarks) that yield `JudgeExample`s.

A source is a small class registered by name; see `registry.py` for the interface. Importing this package
imports every adapter module so that the registry is complete.
"""

from judging.sources.registry import SOURCES, Source, get_source, register_source  # noqa: F401
