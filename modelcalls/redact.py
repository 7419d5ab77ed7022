"""Secrets never leave the process: ``redact(data)`` is the one function every writer of a config (run
summaries, ``pipeline_config.yaml``, logs, error messages) passes it through.

Redacted: every value of a ``headers`` mapping (a custom header is how an Azure-style ``api-key`` is sent,
and any header may carry a credential) and every value whose key is named like a credential: a part
``key``, ``apikey``, ``token``, ``secret``, ``password``/``passwd``, ``authorization``/``auth``,
``credential(s)``, ``cookie`` or ``signature``. Names that only *refer to* a secret keep their value:
``api_key_env`` holds the name of an environment variable, ``max_tokens`` a count.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
_SECRET_PARTS = {"key", "apikey", "token", "secret", "password", "passwd", "authorization", "auth", "credential",
                 "credentials", "cookie", "signature"}
_REFERENCE_SUFFIXES = ("env", "file", "path", "field", "name")  # api_key_env, token_file: where, not what


def name_parts(name: str) -> list[str]:
    """``"X-Api-Key"`` -> ``["x", "api", "key"]``; ``"accessToken"`` -> ``["access", "token"]``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name))
    return [part for part in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if part]


def is_secret_name(name: str) -> bool:
    parts = name_parts(name)
    if not parts or parts[-1] in _REFERENCE_SUFFIXES:
        return False
    return any(part in _SECRET_PARTS for part in parts)


def redact(data: Any, *, secret: bool = False) -> Any:
    """A copy of ``data`` (nested dicts/lists/tuples of plain values) with secret values replaced by
    ``REDACTED``; ``secret=True`` redacts every leaf (used below a ``headers`` or secret-named key)."""
    if isinstance(data, dict):
        return {key: redact(value, secret=secret or str(key).lower() == "headers" or is_secret_name(key))
                for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact(value, secret=secret) for value in data)
    if secret and data is not None and not isinstance(data, bool):
        return REDACTED
    return data


def secret_values(data: Any, *, secret: bool = False) -> list[str]:
    """Every secret leaf of ``data`` as text (what ``redact`` would hide), longest first, for scrubbing
    free text such as a server's error body."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            found += secret_values(value, secret=secret or str(key).lower() == "headers" or is_secret_name(key))
    elif isinstance(data, (list, tuple)):
        for value in data:
            found += secret_values(value, secret=secret)
    elif secret and data is not None and not isinstance(data, bool) and str(data):
        found.append(str(data))
    return sorted(set(found), key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of each secret (of 4+ characters) replaced by ``REDACTED``."""
    for value in secrets:
        if len(value) >= 4:
            text = text.replace(value, REDACTED)
    return text
