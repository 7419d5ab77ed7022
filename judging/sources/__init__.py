"""Registry of dataset sources (training datasets and benchmarks) that yield `JudgeExample`s.

A source is a small class in its own module here, registered by name with ``@register_source``; see
``registry.py`` for the interface. Importing this package imports every module in it, so adding a source
is adding a file.
"""

import importlib
import pkgutil

from judging.sources.registry import SOURCES, Source, get_source, register_source  # noqa: F401

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "registry":
        importlib.import_module(f"{__name__}.{_module.name}")
