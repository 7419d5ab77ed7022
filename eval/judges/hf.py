"""The HF judge: a local transformers (V)LM, optionally with a LoRA adapter from the recipes.

Two scoring paths over the same prompt (`judging.format.prompt_messages`, or a guard model's own format):

* ``fast``: one batched forward pass; the verdict is read from the next-token probabilities of the two
  label tokens (`judging.format.verdict_token_ids`) at the last position: p_unsafe = P(unsafe) /
  (P(safe) + P(unsafe)). Only valid for judges trained/prompted to answer with the verdict first.
* ``generative``: ``generate()`` then a tolerant parse; unparseable outputs get ``label=None`` and are counted.

Batches are grouped by prompt length (sorted, batched, order restored) with left padding, under
``torch.inference_mode``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eval.judges.base import Judge, Prediction
from eval.judges.hf_model import LoadedModel, encode, length_grouped_batches, load_model, prompt_lengths, render_prompt
from eval.judges.images import load_image
from judging.format import FORMAT_VERSION, parse_verdict, prompt_messages, verdict_token_ids
from judging.records import JudgeExample
from rms_dataset import SAFE, UNSAFE

FAST = "fast"
GENERATIVE = "generative"
MODES = (FAST, GENERATIVE)


@dataclass(frozen=True)
class JudgeFormat:
    """How a judge is prompted and how its text is read: one prompt() and one parse()."""

    name: str
    version: str
    build_messages: Callable[[JudgeExample], list[dict]]
    parse: Callable[[str], Prediction]
    supports_fast: bool = True


def _parse_rms(text: str) -> Prediction:
    return Prediction(label=parse_verdict(text), raw_text=text)


RMS_FORMAT = JudgeFormat(name="rms", version=FORMAT_VERSION, build_messages=prompt_messages, parse=_parse_rms)


def _optional_verdict_tokens(loaded: LoadedModel):
    """Label tokens for the generative path's diagnostics (first-step p_unsafe); None when they clash."""
    try:
        return verdict_token_ids(loaded.tokenizer)
    except ValueError:
        return None


class HFJudge(Judge):
    name = "hf"

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        mode: str = FAST,
        batch_size: int = 8,
        max_new_tokens: int = 32,
        judge_format: JudgeFormat = RMS_FORMAT,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown scoring mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode == FAST and not judge_format.supports_fast:
            raise ValueError(f"the {judge_format.name} format cannot be read in one forward pass; use mode 'generative'")
        self.loaded = loaded
        self.mode = mode
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.format = judge_format
        self.verdict_tokens = verdict_token_ids(loaded.tokenizer) if mode == FAST else _optional_verdict_tokens(loaded)

    @classmethod
    def from_pretrained(cls, base_model: str | None = None, adapter: str | None = None, *, load_in_4bit: bool = False,
                        **options: Any) -> HFJudge:
        return cls(load_model(base_model, adapter, load_in_4bit=load_in_4bit), **options)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "base_model": self.loaded.base_model,
            "adapter": self.loaded.adapter,
            "adapter_metadata": self.loaded.adapter_metadata,
            "mode": self.mode,
            "format": self.format.name,
            "format_version": self.format.version,
            "max_new_tokens": self.max_new_tokens if self.mode == GENERATIVE else None,
        }

    # -- scoring -----------------------------------------------------------------------------------------
    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        if not examples:
            return []
        prompts = [render_prompt(self.loaded, self.format.build_messages(example)) for example in examples]
        results: list[Prediction | None] = [None] * len(examples)
        for indices in length_grouped_batches(prompt_lengths(self.loaded, prompts), self.batch_size):
            images = [
                load_image(examples[i].image, where=f"{examples[i].source}/{examples[i].source_id}")
                if self.loaded.is_multimodal else None
                for i in indices
            ]
            batch = encode(self.loaded, [prompts[i] for i in indices], images)
            scored = self._score_fast(batch) if self.mode == FAST else self._score_generative(batch)
            for index, prediction in zip(indices, scored, strict=True):
                results[index] = prediction
        return results  # type: ignore[return-value]

    def _label_probability(self, logits) -> list[float]:
        pair = logits[:, [self.verdict_tokens.safe, self.verdict_tokens.unsafe]].float().softmax(dim=-1)
        return pair[:, 1].tolist()

    def _score_fast(self, batch) -> list[Prediction]:
        import torch

        with torch.inference_mode():
            # Only the last position's logits are needed: skip the vocabulary projection everywhere else.
            logits = self.loaded.model(**batch, logits_to_keep=1).logits[:, -1, :]
        return [
            Prediction(label=UNSAFE if p >= 0.5 else SAFE, p_unsafe=p)
            for p in self._label_probability(logits)
        ]

    def _score_generative(self, batch) -> list[Prediction]:
        import torch

        tokenizer = self.loaded.tokenizer
        with torch.inference_mode():
            output = self.loaded.model.generate(
                **batch, max_new_tokens=self.max_new_tokens, do_sample=False,
                output_scores=True, return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = output.sequences[:, batch["input_ids"].shape[1]:]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        first_step_p = self._label_probability(output.scores[0]) if self.verdict_tokens else [None] * len(texts)
        predictions = []
        for text, tokens, p_first in zip(texts, new_tokens, first_step_p, strict=True):
            parsed = self.format.parse(text)
            first_token = int(tokens[0])
            extras = {**parsed.extras, "first_token_id": first_token}
            if p_first is not None:
                extras["first_step_p_unsafe"] = p_first
                extras["first_token_is_label"] = first_token in (self.verdict_tokens.safe, self.verdict_tokens.unsafe)
            predictions.append(Prediction(label=parsed.label, p_unsafe=parsed.p_unsafe, raw_text=text, extras=extras))
        return predictions
