"""Versioned prompt templates. Each `<name>.yaml` holds `version`, `max_tokens`, `system` and `user` (Jinja2
templates); `load_prompt(name)` returns a `Prompt` that renders chat messages. The version and a hash of the
template text (`digest`) enter the call-cache key and the step checkpoint fingerprints, so an edited prompt
is always asked again, bumped version or not; bump `version` anyway when the meaning changes, it is what
`pipeline_config.yaml` shows a reader."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2
import yaml

PROMPT_DIR = Path(__file__).resolve().parent
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    system: str
    user: str
    max_tokens: int

    @property
    def cache_version(self) -> str:
        return f"{self.name}-v{self.version}"

    @property
    def digest(self) -> str:
        """sha256 of the template text (system, user, default max_tokens)."""
        text = f"{self.system}\x00{self.user}\x00{self.max_tokens}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def render(self, **variables) -> tuple[str, str]:
        """(system text, user text) with the variables filled in."""
        return _compiled(self.system).render(**variables).strip(), _compiled(self.user).render(**variables).strip()


@lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    """A template compiled once per text: compiling is most of a render's cost, and a run renders the same
    few templates for every item."""
    return _ENV.from_string(source)


@lru_cache(maxsize=None)
def load_prompt(name: str, directory: str | None = None) -> Prompt:
    path = Path(directory or PROMPT_DIR) / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"prompt template {path} not found (available: {sorted(p.stem for p in path.parent.glob('*.yaml'))})")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    missing = [key for key in ("version", "system", "user") if key not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; a prompt file needs version, system and user")
    return Prompt(name, str(data["version"]), data["system"], data["user"], int(data.get("max_tokens", 256)))
