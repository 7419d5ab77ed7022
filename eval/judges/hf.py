"""The HF judge: a local transformers (V)LM, optionally with a LoRA adapter from the recipes.

Two scoring paths over the same prompt (`judging.format.prompt_messages`, or a guard model's own format):

* ``fast``: one batched forward pass; the verdict is read at the last position from the two label tokens
  (`judging.format.verdict_token_ids`: the first tokens where "safe" and "unsafe" differ when the model's
  own chat template renders them as the answer): p_unsafe = P(unsafe) / (P(safe) + P(unsafe)). Each
  prediction also records ``label_mass`` = P(safe) + P(unsafe) over the whole vocabulary: a cell whose mean
  mass is below `judging.format.FORMAT_MISMATCH_MASS` is flagged ``format_mismatch`` (the model does not
  answer verdict-first, so the ratio is not its verdict). Only valid for verdict-first judges.
* ``generative``: ``generate()`` then a tolerant parse; unparseable outputs get ``label=None`` and are
  counted. ``p_unsafe`` is the label-token ratio at the step where the verdict would start (the first
  step), so AUROC is still measured.

Batches are grouped by prompt length (sorted, batched, order restored) with left padding, on the shared
plumbing of `modelcalls.transformers_backend`.
"""

from __future__ import annotations

from typing import Any

from eval.judges.base import Judge, Prediction
from eval.judges.hf_model import (
    LoadedModel,
    encode,
    last_position_logits,
    length_grouped_batches,
    load_model,
    prompt_lengths,
    render_prompt,
)
from eval.judges.images import load_image
from judging.format import PROBE_EXAMPLE, RMS_FORMAT, VERDICT_LABELS, JudgeFormat, LabelTokens, verdict_token_ids
from judging.records import JudgeExample
from modelcalls.transformers_backend import append_tokens
from rms_dataset import SAFE, UNSAFE

FAST = "fast"
GENERATIVE = "generative"
MODES = (FAST, GENERATIVE)


def label_probabilities(logits, tokens: LabelTokens) -> tuple[list[float], list[float]]:
    """(p_unsafe, label mass) per row of next-token logits: p_unsafe = P(unsafe) / (P(safe) + P(unsafe)),
    mass = P(safe) + P(unsafe) over the whole vocabulary (computed in log space)."""
    import torch

    logits = logits.float()
    pair = logits[:, list(tokens.ids)]
    p_unsafe = torch.sigmoid(pair[:, 1] - pair[:, 0])
    mass = torch.exp(torch.logsumexp(pair, dim=-1) - torch.logsumexp(logits, dim=-1))
    return p_unsafe.tolist(), mass.tolist()


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

    @classmethod
    def from_pretrained(cls, base_model: str | None = None, adapter: str | None = None, *, load_in_4bit: bool = False,
                        **options: Any) -> HFJudge:
        return cls(load_model(base_model, adapter, load_in_4bit=load_in_4bit), **options)

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
        return render_prompt(self.loaded, self.format.build_messages(example))

    # -- scoring -----------------------------------------------------------------------------------------
    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        if not examples:
            return []
        prompts = [self.rendered_prompt(example) for example in examples]
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

    def _score_fast(self, batch) -> list[Prediction]:
        batch = append_tokens(batch, self.verdict_tokens.prefix_ids)
        p_unsafe, mass = label_probabilities(last_position_logits(self.loaded, batch), self.verdict_tokens)
        return [Prediction(label=UNSAFE if p >= 0.5 else SAFE, p_unsafe=p, extras={"label_mass": m})
                for p, m in zip(p_unsafe, mass, strict=True)]

    def _score_generative(self, batch) -> list[Prediction]:
        import torch

        tokenizer = self.loaded.tokenizer
        with self.loaded.lock, torch.inference_mode():
            output = self.loaded.model.generate(
                **batch, max_new_tokens=self.max_new_tokens, do_sample=False, temperature=None, top_p=None,
                top_k=None, output_scores=True, return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = output.sequences[:, batch["input_ids"].shape[1]:]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        tokens = self.verdict_tokens
        step = len(tokens.prefix_ids) if tokens is not None else 0
        if tokens is not None and step < len(output.scores):
            first_p, first_mass = label_probabilities(output.scores[step], tokens)
        else:
            first_p = first_mass = [None] * len(texts)
        predictions = []
        for row, (text, generated) in enumerate(zip(texts, new_tokens.tolist(), strict=True)):
            parsed = self.format.parse(text)
            extras = {**parsed.extras, "first_token_id": generated[0]}
            p_unsafe = None
            # The verdict position is read only when generation really wrote the shared prefix before it.
            if first_p[row] is not None and generated[:step] == list(tokens.prefix_ids):
                p_unsafe = first_p[row]
                extras["first_step_p_unsafe"] = p_unsafe
                extras["first_step_label_mass"] = first_mass[row]
                extras["first_token_is_label"] = len(generated) > step and generated[step] in tokens.ids
            predictions.append(Prediction(label=parsed.label, p_unsafe=p_unsafe, raw_text=text, extras=extras))
        return predictions
