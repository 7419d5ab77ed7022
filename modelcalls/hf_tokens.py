"""Token-level helpers on a loaded model: chat rendering, left-padded batches, last-position logits,
length-grouped batching and the tokens where answers' renderings part (choice scoring and verdict tokens)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from modelcalls.base import message_text
from modelcalls.hf_loading import LoadedModel


def flat_messages(messages) -> list[dict]:
    """Messages with string contents (text parts joined), for text-only chat templates."""
    return [{"role": message["role"], "content": message_text(message)} for message in messages]


def render_chat(loaded: LoadedModel, messages: list[dict]) -> str:
    """The prompt text of judge-format messages (content parts; ``{"type": "image"}`` for the image)
    through the model's own chat template, ending with the generation prompt."""
    if not loaded.is_multimodal:
        messages = flat_messages(messages)
    return loaded.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def encode(loaded: LoadedModel, texts: list[str], images: list[Any]):
    """One left-padded batch; ``images`` has one entry (PIL image or None) per prompt."""
    present = [image for image in images if image is not None]
    if loaded.is_multimodal:
        from recipes.architectures import ARCHITECTURES

        entry = ARCHITECTURES.get(loaded.model.config.model_type)
        if present and entry is not None and entry.images_per_prompt:  # e.g. Mllama: one list of images per prompt
            present = [[image] if image is not None else [] for image in images]
        batch = loaded.processor(text=texts, images=present or None, padding=True, return_tensors="pt",
                                 add_special_tokens=False)
    else:
        batch = loaded.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
    return batch.to(loaded.model.device)


def append_tokens(batch, ids: tuple[int, ...]):
    """Append the same token ids to every row of a left-padded batch (their attention mask is 1)."""
    if not ids:
        return batch
    import torch

    rows = batch["input_ids"].shape[0]
    extra = torch.tensor([list(ids)] * rows, dtype=batch["input_ids"].dtype, device=batch["input_ids"].device)
    batch["input_ids"] = torch.cat([batch["input_ids"], extra], dim=1)
    batch["attention_mask"] = torch.cat([batch["attention_mask"], torch.ones_like(extra)], dim=1)
    return batch


def last_position_logits(loaded: LoadedModel, batch):
    """Next-token logits (float32) after each row's last token: one forward pass, the vocabulary projection
    computed for the last position only (left padding puts every row's last token there)."""
    import torch

    with loaded.lock, torch.inference_mode():
        return loaded.model(**batch, logits_to_keep=1).logits[:, -1, :].float()


def length_grouped_batches(lengths: list[int], batch_size: int) -> Iterator[list[int]]:
    """Indices into the original list, sorted by length (longest first) and cut into batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


@dataclass(frozen=True)
class AnswerTokens:
    """The first token of each answer where the answers' renderings part, and the tokens all of them share
    after the prompt (to append to the prompt before reading the next-token distribution)."""

    ids: dict[str, int]
    prefix_ids: tuple[int, ...]


def distinguishing_tokens(prompt_ids: list[int], answer_ids: dict[str, list[int]]) -> AnswerTokens:
    """Given the token ids of the prompt and of prompt + each answer, the first position where the answers
    differ. Errors (ValueError) when the prompt is not a token prefix of every rendering (the tokenizer
    merges across the boundary), or when two answers share their first distinguishing token."""
    sequences = list(answer_ids.values())
    for answer, ids in answer_ids.items():
        if ids[: len(prompt_ids)] != list(prompt_ids):
            raise ValueError(f"the prompt does not tokenize as a prefix of the prompt followed by {answer!r}")
    common = len(prompt_ids)
    while all(len(ids) > common for ids in sequences) and len({ids[common] for ids in sequences}) == 1:
        common += 1
    if any(len(ids) <= common for ids in sequences):
        raise ValueError(f"the answers {list(answer_ids)} do not start with distinct tokens")
    ids = {answer: seq[common] for answer, seq in answer_ids.items()}
    if len(set(ids.values())) < len(ids):
        raise ValueError(f"the answers {list(answer_ids)} do not start with distinct tokens")
    return AnswerTokens(ids, tuple(sequences[0][len(prompt_ids) : common]))


def answer_tokens(tokenizer, template, messages: list[dict], answers) -> AnswerTokens:
    """The distinguishing tokens of ``answers`` written as the assistant's turn after ``messages``, rendered
    by ``template.apply_chat_template`` (a tokenizer or a processor) and tokenized by ``tokenizer``."""
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    prompt = template.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    renderings = {}
    for answer in answers:
        content = answer if all(isinstance(m["content"], str) for m in messages) else [{"type": "text", "text": answer}]
        conversation = [*messages, {"role": "assistant", "content": content}]
        renderings[answer] = ids(template.apply_chat_template(conversation, tokenize=False))
    return distinguishing_tokens(ids(prompt), renderings)




def prompt_lengths(tokenizer, prompts: list[str]) -> list[int]:
    """The token count of each rendered prompt (to group prompts of similar length into batches)."""
    return [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
