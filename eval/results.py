"""Result files (cells): one JSON object per (judge, benchmark) with ``schema_version``
(`RESULT_SCHEMA_VERSION`), written whole or not at all and read back with a clear error for any other
version; and the one line a person reads after a cell is scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atomic_files import write_atomic

RESULT_SCHEMA_VERSION = "2"


class ResultSchemaError(ValueError):
    pass


def write_result(path: Path | str, result: dict[str, Any]) -> Path:
    """Whole or not at all (`atomic_files.write_atomic`): a crash never leaves a half-written result that
    looks finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(result, indent=2, default=str))
    return path


def read_result(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ResultSchemaError(f"{path}: not valid JSON ({error}); delete it to recompute that cell") from error
    version = result.get("schema_version") if isinstance(result, dict) else None
    if version != RESULT_SCHEMA_VERSION:
        raise ResultSchemaError(
            f"{path}: result schema_version {version!r}, this toolkit reads {RESULT_SCHEMA_VERSION!r}; "
            "recompute it with this version (delete the file and rerun the grid) or use the matching toolkit"
        )
    for key in ("judge", "benchmark", "primary", "metrics"):
        if key not in result:
            raise ResultSchemaError(f"{path}: result has no {key!r} field; it was not written by eval.score")
    return result


def format_cell_line(result: dict[str, Any], out: Path | str) -> str:
    """One line a person reads after scoring a cell: the primary value and CI, n, missing images,
    unparseable answers, label mass, and the text-only / format-mismatch labels."""
    primary, benchmark = result["primary"], result["benchmark"]
    value = "n/a" if primary["value"] is None else f"{primary['value']:.3f}"
    ci = "" if not primary["ci"] else f" [{primary['ci'][0]:.3f}, {primary['ci'][1]:.3f}]"
    mass = "" if result["label_mass"] is None else f", label mass {result['label_mass']:.2f}"
    flags = (" TEXT-ONLY" if result["text_only"] else "") + (" FORMAT-MISMATCH" if result["format_mismatch"] else "")
    return (f"{result['key']}: {primary['metric']} = {value}{ci}; n={result['n']}, missing images "
            f"{result['missing_images']}, unparseable {result['unparseable']}{mass} ({result['mode']}){flags} "
            f"-> {out}")
