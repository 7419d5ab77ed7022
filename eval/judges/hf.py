"""The HF judge: a local transformers (V)LM, optionally with a LoRA adapter from the recipes, asked through
the one model-call layer: its prompt and its verdict reading are `ModelCall`s run on a `TransformersBackend`.

Two scoring paths over the same prompt (`judging.format.prompt_messages`, or a guard model's own format):

* ``fast`` (`VerdictScoreCall`): a choice-scoring request, answered by the backend in one batched forward
  pass: the log-probabilities of the two label tokens at the last position, where the model's own chat
  template writes "safe" and "unsafe" as the answer: p_unsafe = P(unsafe) / (P(safe) + P(unsafe)). Each
  prediction also records ``label_mass`` = P(safe) + P(unsafe) over the whole vocabulary: a cell whose mean
  mass is below `judging.format.FORMAT_MISMATCH_MASS` is flagged ``format_mismatch`` (the model does not
  answer verdict-first, so the ratio is not its verdict). Only valid for verdict-first judges.
* ``generative`` (`VerdictTextCall`): greedy generation, then the format's tolerant parse; unparseable
  outputs get ``label=None`` and are counted. ``p_unsafe`` is the label-token ratio at the step where the
  verdict would start (the fast path's reading of the same prompt), so AUROC is still measured.

Items are sent in order of prompt length, so the backend's batches (up to ``batch_size``, left-padded)
group prompts of similar length; predictions come back in the examples' order.
"""

from __future__ import annotations

import json
import math
from typing import Any

from eval.judges.base import Judge, Prediction
from eval.judges.images import image_bytes
from judging.format import PROBE_EXAMPLE, RMS_FORMAT, VERDICT_LABELS, JudgeFormat, LabelTokens, verdict_token_ids
from judging.records import JudgeExample
from modelcalls import ChatRequest, ChatResponse, ModelCall, run_calls_sync
from modelcalls.base import image_part
from modelcalls.hf_loading import LoadedModel
from modelcalls.hf_tokens import length_grouped_batches, prompt_lengths, render_chat
from modelcalls.transformers_backend import TransformersBackend
from rms_dataset import SAFE, UNSAFE

FAST = "fast"
GENERATIVE = "generative"
MODES = (FAST, GENERATIVE)


def label_probabilities(choice_logprobs: dict[str, float]) -> tuple[float, float]:
    """(p_unsafe, label mass) from the two label tokens' log-probabilities: p_unsafe = P(unsafe) /
    (P(safe) + P(unsafe)), mass = P(safe) + P(unsafe) over the whole vocabulary."""
    safe, unsafe = choice_logprobs[SAFE], choice_logprobs[UNSAFE]
    return 1.0 / (1.0 + math.exp(safe - unsafe)), math.exp(safe) + math.exp(unsafe)


def request_messages(judge_format: JudgeFormat, example: JudgeExample, *, with_image: bool) -> tuple[dict, ...]:
    """The format's messages with the image part carrying the example's image (a VLM), or left out (a
    text-only model reads the text parts)."""
    messages = []
    for message in judge_format.build_messages(example):
        content = message["content"]
        if not isinstance(content, str):
            parts = []
            for part in content:
                if part.get("type") != "image":
                    parts.append(part)
                elif with_image:
                    where = f"{example.source}/{example.source_id}"
                    parts.append(image_part(image_bytes(example.image, where=where), "image/png"))
            content = parts
        messages.append({**message, "content": content})
    return tuple(messages)


class VerdictScoreCall(ModelCall[JudgeExample, dict[str, float]]):
    """The label tokens' log-probabilities after the judge prompt (choice scoring, one forward pass)."""

    name = "judge-score"
    template_version = "judge-score-v1"
    max_parse_retries = 0

    def __init__(self, judge_format: JudgeFormat, *, with_image: bool):
        self.format = judge_format
        self.with_image = with_image

    def request(self, example: JudgeExample) -> ChatRequest:
        return ChatRequest(messages=request_messages(self.format, example, with_image=self.with_image),
                           choices=VERDICT_LABELS, max_tokens=1)

    def parse(self, example: JudgeExample, response: ChatResponse) -> dict[str, float]:
        return json.loads(response.text)["choice_logprobs"]


class VerdictTextCall(ModelCall[JudgeExample, str]):
    """The judge's greedy answer, read by the format's parser (an unparseable answer is data, not retried)."""

    name = "judge-generate"
    template_version = "judge-generate-v1"
    max_parse_retries = 0

    def __init__(self, judge_format: JudgeFormat, *, with_image: bool, max_new_tokens: int):
        self.format = judge_format
        self.with_image = with_image
        self.max_new_tokens = max_new_tokens

    def request(self, example: JudgeExample) -> ChatRequest:
        return ChatRequest(messages=request_messages(self.format, example, with_image=self.with_image),
                           temperature=0.0, max_tokens=self.max_new_tokens)

    def parse(self, example: JudgeExample, response: ChatResponse) -> str:
        return response.text


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
        self.backend = TransformersBackend.from_loaded(loaded, batch_size=batch_size)
        self.mode = mode
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.format = judge_format
        self.verdict_tokens = self._verdict_tokens(required=mode == FAST)

    def _verdict_tokens(self, *, required: bool) -> LabelTokens | None:
        """The label tokens under this model's chat template and this format's prompt; in generative mode
        they only serve the first-step p_unsafe, so a template where they clash (or a format whose labels
        are not safe/unsafe) gives None there."""
        if tuple(self.format.labels) != VERDICT_LABELS and not required:
            return None
        try:
            return verdict_token_ids(self.loaded.tokenizer, self.loaded.processor,
                                     messages=self.format.build_messages(PROBE_EXAMPLE))
        except Exception:  # ValueError: labels clash; a guard model's template may also reject the probe
            if required:
                raise
            return None

    def describe(self) -> dict[str, Any]:
        tokens = self.verdict_tokens
        return {
            "kind": self.name,
            "base_model": self.loaded.base_model,
            "weights": self.loaded.fingerprint,
            "adapter": self.loaded.adapter,
            "adapter_metadata": self.loaded.adapter_metadata,
            "mode": self.mode,
            "format": self.format.name,
            "format_version": self.format.version,
            "labels": list(self.format.labels),
            "label_tokens": None if tokens is None else {"ids": list(tokens.ids), "prefix": list(tokens.prefix_ids)},
            "decoding": {"greedy": True, "max_new_tokens": self.max_new_tokens} if self.mode == GENERATIVE else None,
        }

    def with_format(self, judge_format: JudgeFormat, *, mode: str = GENERATIVE) -> HFJudge:
        """The same loaded model asked another question (e.g. `judging.format.REFUSAL_FORMAT`)."""
        return HFJudge(self.loaded, mode=mode, batch_size=self.batch_size, max_new_tokens=self.max_new_tokens,
                       judge_format=judge_format)

    def rendered_prompt(self, example: JudgeExample) -> str:
        return render_chat(self.loaded, self.format.build_messages(example))

    # -- scoring -----------------------------------------------------------------------------------------
    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        if not examples:
            return []
        lengths = prompt_lengths(self.loaded.tokenizer, [self.rendered_prompt(example) for example in examples])
        order = [index for batch in length_grouped_batches(lengths, self.batch_size) for index in batch]
        ordered = [examples[index] for index in order]
        with_image = self.loaded.is_multimodal
        if self.mode == FAST:
            scored = self._run(VerdictScoreCall(self.format, with_image=with_image), ordered)
            predictions = [self._fast_prediction(logprobs) for logprobs in scored]
        else:
            texts = self._run(VerdictTextCall(self.format, with_image=with_image,
                                              max_new_tokens=self.max_new_tokens), ordered)
            first_steps = (self._run(VerdictScoreCall(self.format, with_image=with_image), ordered)
                           if self.verdict_tokens is not None else [None] * len(texts))
            label_words = ([self.loaded.tokenizer.decode([token]).strip() for token in self.verdict_tokens.ids]
                           if self.verdict_tokens is not None else [])
            predictions = [self._generative_prediction(text, first, label_words)
                           for text, first in zip(texts, first_steps, strict=True)]
        results: list[Prediction | None] = [None] * len(examples)
        for index, prediction in zip(order, predictions, strict=True):
            results[index] = prediction
        return results  # type: ignore[return-value]

    def _run(self, call: ModelCall, examples: list[JudgeExample]) -> list:
        """The call's outputs in order; the first item that failed is an error naming it."""
        results = run_calls_sync(call, examples, self.backend, cache=None, concurrency=self.batch_size)
        for example, result in zip(examples, results, strict=True):
            if not result.ok:
                raise RuntimeError(f"{example.source}/{example.source_id}: judge {self.loaded.base_model} "
                                   f"failed: {result.error}")
        return [result.output for result in results]

    @staticmethod
    def _fast_prediction(choice_logprobs: dict[str, float]) -> Prediction:
        p_unsafe, mass = label_probabilities(choice_logprobs)
        return Prediction(label=UNSAFE if p_unsafe >= 0.5 else SAFE, p_unsafe=p_unsafe, extras={"label_mass": mass})

    def _generative_prediction(self, text: str, first_step: dict[str, float] | None, label_words: list[str]) -> Prediction:
        """The parsed answer; with the first step's label-token reading and whether the answer starts with a
        label token's text (``label_words``: the label tokens decoded)."""
        parsed = self.format.parse(text)
        extras = dict(parsed.extras)
        p_unsafe = None
        if first_step is not None:
            p_unsafe, mass = label_probabilities(first_step)
            extras["first_step_p_unsafe"] = p_unsafe
            extras["first_step_label_mass"] = mass
            extras["first_token_is_label"] = any(word and text.lstrip().startswith(word) for word in label_words)
        return Prediction(label=parsed.label, p_unsafe=p_unsafe, raw_text=text, extras=extras)
