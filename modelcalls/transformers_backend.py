"""``TransformersBackend``: a local model run in-process, batched.

Text LLMs load with ``AutoModelForCausalLM`` + the tokenizer's chat template; vision-language models
(a config with a ``vision_config``) with ``AutoModelForImageTextToText`` + its processor (the architecture
registry, `recipes.architectures`), the ``data:`` URL images of the request decoded to PIL images. Model
names go through ``local_models.resolve_model``, so ``smollm2`` and ``tiny-llava`` work offline and Hub ids
work online. ``TransformersBackend.from_loaded`` serves a model already loaded (a judge: base + LoRA adapter).

Concurrent ``chat()`` calls are collected into batches of up to ``batch_size`` requests with the same
generation settings (`modelcalls.hf_batching`), left-padded, and generated in a worker thread (greedy when
``temperature == 0``). ``json_schema`` is not enforced (no constrained decoding): the prompt must ask for JSON.

Choice scoring (a request with ``choices``): one forward pass, each choice's first-token log-probability at
the last position. With an ``answer_prefix`` the choices' tokens are read right after the prompt + prefix;
without one, where the model's own chat template writes each choice as the assistant's turn (the eval
judges' verdict tokens: LLaVA's ``ASSISTANT: safe`` starts with the token `` safe``), shared leading
whitespace tokens (SentencePiece's lone ``▁``) appended to the prompt.

The pieces live one job a module: loading (`hf_loading`), weight fingerprints (`hf_fingerprint`), adapter
metadata (`judge_metadata`), token utilities (`hf_tokens`), batching (`hf_batching`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from modelcalls.base import (
    BackendError,
    ChatRequest,
    ChatResponse,
    Usage,
    check_spec_keys,
    decode_data_url,
    image_url_of,
    message_text,
)
from modelcalls.hf_batching import RequestBatcher
from modelcalls.hf_loading import LoadedModel, resolve_pinned, shared_model
from modelcalls.hf_tokens import AnswerTokens, answer_tokens, append_tokens, distinguishing_tokens, encode, last_position_logits


@dataclass(frozen=True)
class Rendered:
    """One request ready for the model: the prompt text, its PIL images, and the messages as the chat
    template received them (for reading choices in the template's context)."""

    text: str
    images: list
    messages: list[dict]


class TransformersBackend:
    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 8,
        device: str = "auto",
        dtype: str = "auto",
        supports_images: bool | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
    ):
        import torch
        from transformers import AutoConfig

        if batch_size < 1:
            raise ValueError(f"backend 'transformers': batch_size must be >= 1, got {batch_size}")
        try:
            path, pin = resolve_pinned(model, revision)
        except ValueError as error:
            raise ValueError(f"backend 'transformers': {error}") from None
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **pin)
        is_vlm = getattr(config, "vision_config", None) is not None
        supports_images = is_vlm if supports_images is None else supports_images
        if supports_images and not is_vlm:
            raise ValueError(f"backend 'transformers': {model} is a text-only model; set supports_images: false")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._setup(shared_model(model, device, dtype, trust_remote_code, revision), model, batch_size,
                    supports_images, device)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, *, batch_size: int = 8) -> TransformersBackend:
        """A backend on a model already loaded (e.g. a judge's base model + LoRA adapter, `hf_loading.load_model`)."""
        if batch_size < 1:
            raise ValueError(f"backend 'transformers': batch_size must be >= 1, got {batch_size}")
        backend = cls.__new__(cls)
        backend._setup(loaded, loaded.base_model, batch_size, loaded.is_multimodal, str(loaded.model.device))
        return backend

    def _setup(self, loaded: LoadedModel, model: str, batch_size: int, supports_images: bool, device: str) -> None:
        import torch

        self._torch = torch
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.loaded = loaded
        self.is_vlm = loaded.is_multimodal
        self.supports_images = supports_images
        self.hf_model, self.tokenizer = loaded.model, loaded.tokenizer
        self.processor = loaded.processor if self.is_vlm else None
        self._eos_ids = self._eos_token_ids()
        self._choice_memo: dict[tuple, AnswerTokens] = {}
        self._batcher = RequestBatcher(batch_size, self._render_each, self._generate_rendered, model)
        self.batches_run: list[int] = []  # size of every batch generated (observability, tests)

    @classmethod
    def from_spec(cls, options: dict) -> TransformersBackend:
        allowed = {"model", "revision", "batch_size", "device", "dtype", "supports_images", "trust_remote_code",
                   "max_concurrency"}
        check_spec_keys("transformers", options, allowed, required={"model"})
        options = dict(options)
        options.pop("max_concurrency", None)  # the batch size bounds the work in flight
        return cls(**options)

    async def identify(self) -> dict[str, Any]:
        """``identity``, as every backend reports it (``OpenAIBackend.identify`` asks its servers)."""
        return self.identity

    @property
    def identity(self) -> dict[str, Any]:
        """What the loaded weights are, for provenance and checkpoint fingerprints: the Hub commit
        actually loaded (whatever ``revision`` named, a branch or a tag included), else a fingerprint of
        the local weight files (and the adapter's hash)."""
        return dict(self.loaded.fingerprint)

    def _eos_token_ids(self) -> set[int]:
        ids = set()
        configured = getattr(self.hf_model.generation_config, "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(configured)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    # ------------------------------------------------------------------------------------ rendering

    def _render(self, request: ChatRequest) -> Rendered:
        """Prompt text, PIL images and template messages of one request."""
        from PIL import Image

        if not self.is_vlm:
            messages = []
            for message in request.messages:
                content = message["content"]
                if not isinstance(content, str) and any(image_url_of(part) for part in content):
                    raise BackendError(
                        f"{self.model} is a text-only model but the request carries an image; "
                        "send the image caption instead (supports_images is False)"
                    )
                messages.append({"role": message["role"], "content": message_text(message)})
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return Rendered(text + request.answer_prefix, [], messages)
        images = []
        messages = []
        for message in request.messages:
            content = message["content"]
            if isinstance(content, str):
                parts = [{"type": "text", "text": content}]
            else:
                parts = []
                for part in content:
                    url = image_url_of(part)
                    if url is not None:
                        try:
                            images.append(Image.open(io.BytesIO(decode_data_url(url))).convert("RGB"))
                        except ValueError as error:
                            raise BackendError(f"bad image in the request: {error}") from None
                        parts.append({"type": "image"})
                    elif part.get("type") == "text":
                        parts.append({"type": "text", "text": part["text"]})
            messages.append({"role": message["role"], "content": parts})
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return Rendered(text + request.answer_prefix, images, messages)

    def _render_each(self, requests: list[ChatRequest]) -> list[Rendered | BackendError]:
        """Render every request; a request that cannot be rendered gets its own error, not its batch's."""
        rendered = []
        for request in requests:
            try:
                rendered.append(self._render(request))
            except BackendError as error:
                rendered.append(error)
            except Exception as error:
                rendered.append(BackendError(f"{self.model}: could not render the request: {type(error).__name__}: {error}"))
        return rendered

    # ----------------------------------------------------------------------------------- generation

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Generate one batch of requests (raises the first rendering error)."""
        rendered = self._render_each(requests)
        for item in rendered:
            if isinstance(item, BackendError):
                raise item
        return self._generate_rendered(requests, rendered)

    def _inputs(self, rendered: list[Rendered]):
        return encode(self.loaded, [item.text for item in rendered], [image for item in rendered for image in item.images])

    def _choice_tokens(self, request: ChatRequest, rendered: Rendered) -> AnswerTokens:
        """Where each choice is read: after an ``answer_prefix``, each choice's first token as it tokenizes
        right after the prompt text; without one, where the chat template's renderings of the choices as the
        assistant's turn part (the same for every request of one message layout, so computed once each)."""
        def ids(text: str) -> list[int]:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

        choices = request.choices
        try:
            if request.answer_prefix:
                found = distinguishing_tokens(ids(rendered.text), {choice: ids(rendered.text + choice) for choice in choices})
            else:
                layout = (choices, tuple((m["role"], _part_types(m["content"])) for m in rendered.messages))
                if layout not in self._choice_memo:
                    template = self.processor if self.is_vlm else self.tokenizer
                    self._choice_memo[layout] = answer_tokens(self.tokenizer, template, rendered.messages, choices)
                found = self._choice_memo[layout]
        except ValueError as error:
            raise BackendError(f"{self.model}: {error}") from None
        if found.prefix_ids and (request.answer_prefix or self.tokenizer.decode(list(found.prefix_ids)).strip()):
            raise BackendError(f"{self.model}: the choices {list(choices)} do not start with distinct tokens "
                               "(they share a first token); move the shared part into answer_prefix")
        return found

    def _score_rendered(self, requests: list[ChatRequest], rendered: list[Rendered]) -> list[ChatResponse]:
        """One forward pass per shared prefix (usually one); each choice's first-token log-probability at the
        last position (left padding)."""
        tokens = [self._choice_tokens(request, item) for request, item in zip(requests, rendered)]
        responses: list[ChatResponse | None] = [None] * len(requests)
        for prefix in dict.fromkeys(found.prefix_ids for found in tokens):
            rows = [row for row, found in enumerate(tokens) if found.prefix_ids == prefix]
            inputs = append_tokens(self._inputs([rendered[row] for row in rows]), prefix)
            logprobs = self._torch.log_softmax(last_position_logits(self.loaded, inputs), dim=-1)
            for position, row in enumerate(rows):
                scores = {choice: float(logprobs[position, token]) for choice, token in tokens[row].ids.items()}
                prompt_tokens = int(inputs["attention_mask"][position].sum())
                responses[row] = ChatResponse(json.dumps({"choice_logprobs": scores}), Usage(prompt_tokens, 0), "stop")
        self.batches_run.append(len(requests))
        return responses  # type: ignore[return-value]

    def _generate_rendered(self, requests: list[ChatRequest], rendered: list[Rendered]) -> list[ChatResponse]:
        """Generate (or, for choice-scoring requests, score) one batch (runs in a worker thread)."""
        if requests[0].choices is not None:
            return self._score_rendered(requests, rendered)
        torch = self._torch
        inputs = self._inputs(rendered)
        first = requests[0]
        sampling = first.temperature > 0
        settings = {"max_new_tokens": first.max_tokens, "do_sample": sampling, "pad_token_id": self.tokenizer.pad_token_id}
        if sampling:
            settings["temperature"] = first.temperature
            if first.seed is not None:
                torch.manual_seed(first.seed)
        else:
            settings.update(temperature=None, top_p=None, top_k=None)
        with self.loaded.lock, torch.inference_mode():
            output = self.hf_model.generate(**inputs, **settings)
        prompt_length = inputs["input_ids"].shape[1]
        responses = []
        for row, generated in enumerate(output[:, prompt_length:].tolist()):
            length = len(generated)
            finish = "length"
            for position, token in enumerate(generated):
                if token in self._eos_ids:
                    length, finish = position, "stop"
                    break
            text = self.tokenizer.decode(generated[:length], skip_special_tokens=True)
            prompt_tokens = int(inputs["attention_mask"][row].sum())
            completion_tokens = length + (finish == "stop")
            responses.append(ChatResponse(text, Usage(prompt_tokens, completion_tokens), finish))
        self.batches_run.append(len(requests))
        return responses

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await self._batcher.submit(request)

    def chat_batch_sync(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Generate ``requests`` as one batch, synchronously (no event loop needed)."""
        return self._generate(list(requests))

    async def aclose(self) -> None:
        await self._batcher.aclose()

    def __repr__(self) -> str:
        return f"TransformersBackend(model={self.model!r}, batch_size={self.batch_size}, device={self.device!r})"


def _part_types(content) -> tuple[str, ...] | str:
    return "text" if isinstance(content, str) else tuple(part.get("type", "") for part in content)
