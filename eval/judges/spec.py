"""The typed judge spec: one declaration of every option a judge takes, read from a grid YAML (``judge:``
options for every cell, ``judges:`` entries), from eval.score / eval.respond flags, or from a dict in code.
`eval.judges.make_judge` builds a judge from it; a bad key or a missing one is one line naming it
(``ConfigError``; commands exit 2) before any model is loaded."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import PositiveInt, model_validator

from typed_config import StrictModel, parse_config

MODEL_KINDS = ("hf", "llama-guard", "llavaguard")  # local transformers judges
KINDS = (*MODEL_KINDS, "api")
SANITY_FORMS = "constant:unsafe, constant:safe, random:SEED, oracle:ACCURACY:SEED"
CALLABLE_FORM = "python:MODULE:FUNCTION"
_MODEL_KEYS = ("base_model", "adapter", "model", "base_url")


class JudgeOptions(StrictModel):
    """How a model judge runs (the grid's ``judge:`` block applies them to every trained or zero-shot row).
    ``mode``: fast (one forward pass, label-token probabilities) or generative (read the written verdict);
    default fast with an adapter, generative for a zero-shot base model and for guard models."""

    mode: Literal["fast", "generative"] | None = None
    batch_size: PositiveInt | None = None
    max_new_tokens: PositiveInt | None = None
    load_in_4bit: bool = False


class JudgeSpec(JudgeOptions):
    """A judge: ``kind`` (hf, llama-guard, llavaguard, api, a sanity kind or python:MODULE:FUNCTION) and what
    that kind needs: a base model and/or adapter (local folder or Hub id) for the model kinds, ``model`` and
    ``base_url`` (OpenAI-compatible) for api, ``policy_file`` for llavaguard."""

    kind: str = "hf"
    base_model: str | None = None
    adapter: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    policy_file: str | None = None

    @model_validator(mode="after")
    def _kind_and_what_it_needs(self) -> JudgeSpec:
        from eval.judges.callable import is_callable_kind
        from eval.judges.sanity import is_sanity_kind

        given = sorted(key for key in _MODEL_KEYS if getattr(self, key))
        if is_sanity_kind(self.kind) or is_callable_kind(self.kind):
            what = "sanity" if is_sanity_kind(self.kind) else "callable"
            if given:
                raise ValueError(f"judge kind {self.kind!r} is a {what} judge and takes no {', '.join(given)}")
        elif self.kind == "api":
            if not (self.model and self.base_url):
                raise ValueError("an api judge needs 'model' and 'base_url' (--api-model, --base-url)")
            if self.base_model or self.adapter:
                raise ValueError("an api judge takes no base_model or adapter")
        elif self.kind in MODEL_KINDS:
            if self.kind == "hf" and not (self.base_model or self.adapter):
                raise ValueError("an hf judge needs 'base_model' and/or 'adapter' (--base-model, --adapter)")
            if self.model or self.base_url:
                raise ValueError(f"a {self.kind} judge runs locally and takes no model or base_url (those are api)")
        else:
            raise ValueError(f"unknown judge kind {self.kind!r}; choose one of {', '.join(KINDS)}, a sanity kind "
                             f"({SANITY_FORMS}) or a callable judge {CALLABLE_FORM}")
        if self.policy_file and self.kind != "llavaguard":
            raise ValueError("policy_file is for llavaguard judges only")
        return self

    @property
    def scoring_mode(self) -> str:
        """The mode a model judge runs in when none is given (see `JudgeOptions`)."""
        if self.mode:
            return self.mode
        return "fast" if self.kind == "hf" and self.adapter else "generative"


def parse_judge_spec(data: JudgeSpec | dict[str, Any], *, source: str = "judge") -> JudgeSpec:
    return data if isinstance(data, JudgeSpec) else parse_config(JudgeSpec, data, source=source)
