"""``TransformersBackend``: a local model run in-process, batched.

Text LLMs load with ``AutoModelForCausalLM`` + the tokenizer's chat template; vision-language models
(a config with a ``vision_config``) with ``AutoModelForImageTextToText`` + ``AutoProcessor``, the
``data:`` URL images of the request decoded to PIL images. Model names go through
``local_models.resolve_model``, so ``smollm2`` and ``tiny-llava`` work offline and Hub ids work online.

Concurrent ``chat()`` calls are collected into batches of up to ``batch_size`` requests with the same
generation settings, left-padded, and generated in a worker thread so that the event loop keeps going
(greedy when ``temperature == 0``). ``json_schema`` is not enforced (no constrained decoding): the
prompt must ask for JSON.
"""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import dataclass

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


@dataclass
class _Pending:
    request: ChatRequest
    future: asyncio.Future


@dataclass
class _Loaded:
    model: object
    tokenizer: object
    processor: object | None
    lock: threading.Lock  # one generation at a time per loaded model


_LOADED: dict[tuple, _Loaded] = {}
_LOADING = threading.Lock()


def _load(path: str, is_vlm: bool, device: str, dtype: str, trust_remote_code: bool) -> _Loaded:
    """Load a model once per (path, device, dtype): two roles naming the same model share one copy."""
    import torch

    key = (path, device, dtype, trust_remote_code)
    with _LOADING:
        if key in _LOADED:
            return _LOADED[key]
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        if is_vlm:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
            tokenizer = processor.tokenizer
            model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype, trust_remote_code=trust_remote_code)
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            processor = None
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, trust_remote_code=trust_remote_code)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        loaded = _Loaded(model.to(device).eval(), tokenizer, processor, threading.Lock())
        _LOADED[key] = loaded
        return loaded


def _batch_key(request: ChatRequest) -> tuple:
    """Requests generated together must share these settings (the seed only matters when sampling);
    choice-scoring requests are batched only with each other."""
    if request.choices is not None:
        return ("score",)
    sampling = request.temperature > 0
    return (request.max_tokens, request.temperature, request.seed if sampling else None)


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
    ):
        import torch
        from transformers import AutoConfig

        from local_models import resolve_model

        if batch_size < 1:
            raise ValueError(f"backend 'transformers': batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self._torch = torch
        path = resolve_model(model)
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        self.is_vlm = getattr(config, "vision_config", None) is not None
        self.supports_images = self.is_vlm if supports_images is None else supports_images
        if self.supports_images and not self.is_vlm:
            raise ValueError(f"backend 'transformers': {model} is a text-only model; set supports_images: false")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        loaded = _load(path, self.is_vlm, device, dtype, trust_remote_code)
        self.hf_model, self.tokenizer, self.processor = loaded.model, loaded.tokenizer, loaded.processor
        self._generate_lock = loaded.lock
        self._eos_ids = self._eos_token_ids()
        self._pending: list[_Pending] = []
        self._batcher: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches_run: list[int] = []  # size of every batch generated (observability, tests)

    @classmethod
    def from_spec(cls, options: dict) -> TransformersBackend:
        allowed = {"model", "batch_size", "device", "dtype", "supports_images", "trust_remote_code", "max_concurrency"}
        check_spec_keys("transformers", options, allowed, required={"model"})
        options = dict(options)
        options.pop("max_concurrency", None)  # the batch size bounds the work in flight
        return cls(**options)

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

    def _render(self, request: ChatRequest) -> tuple[str, list]:
        """Prompt text and the PIL images of one request."""
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
            return text + request.answer_prefix, []
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
        return text + request.answer_prefix, images

    # ----------------------------------------------------------------------------------- generation

    def _render_each(self, requests: list[ChatRequest]) -> list[tuple[str, list] | BackendError]:
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

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Generate one batch of requests (raises the first rendering error)."""
        rendered = self._render_each(requests)
        for item in rendered:
            if isinstance(item, BackendError):
                raise item
        return self._generate_rendered(requests, rendered)

    def _inputs(self, rendered: list[tuple[str, list]]):
        texts = [text for text, _ in rendered]
        images = [image for _, request_images in rendered for image in request_images]
        if self.is_vlm:
            inputs = self.processor(
                text=texts, images=images or None, padding=True, return_tensors="pt", add_special_tokens=False
            )
        else:
            inputs = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
        return inputs.to(self.device)

    def _choice_token_ids(self, choices: tuple[str, ...]) -> dict[str, int]:
        ids = {choice: self.tokenizer.encode(choice, add_special_tokens=False)[0] for choice in choices}
        if len(set(ids.values())) < len(ids):
            raise BackendError(f"{self.model}: the choices {list(choices)} do not start with distinct tokens")
        return ids

    def _score_rendered(self, requests: list[ChatRequest], rendered: list[tuple[str, list]]) -> list[ChatResponse]:
        """One forward pass; each choice's first-token log-probability at the last position (left padding)."""
        import json

        torch = self._torch
        inputs = self._inputs(rendered)
        with self._generate_lock, torch.inference_mode():
            logits = self.hf_model(**inputs, logits_to_keep=1).logits[:, -1, :].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        responses = []
        for row, request in enumerate(requests):
            ids = self._choice_token_ids(request.choices)
            scores = {choice: round(float(logprobs[row, token]), 6) for choice, token in ids.items()}
            prompt_tokens = int(inputs["attention_mask"][row].sum())
            responses.append(ChatResponse(json.dumps({"choice_logprobs": scores}), Usage(prompt_tokens, 0), "stop"))
        self.batches_run.append(len(requests))
        return responses

    def _generate_rendered(self, requests: list[ChatRequest], rendered: list[tuple[str, list]]) -> list[ChatResponse]:
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
        with self._generate_lock, torch.inference_mode():
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

    async def _run_batches(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Let every coroutine that is ready right now submit its request before cutting a batch.
            for _ in range(3):
                await asyncio.sleep(0)
            while self._pending:
                key = _batch_key(self._pending[0].request)
                batch = [p for p in self._pending if _batch_key(p.request) == key][: self.batch_size]
                taken = set(map(id, batch))
                self._pending = [p for p in self._pending if id(p) not in taken]
                rendered = await asyncio.to_thread(self._render_each, [p.request for p in batch])
                for pending, item in zip(batch, rendered):
                    if isinstance(item, BackendError) and not pending.future.done():
                        pending.future.set_exception(item)
                good = [(p, item) for p, item in zip(batch, rendered) if not isinstance(item, BackendError)]
                if not good:
                    continue
                batch = [p for p, _ in good]
                try:
                    responses = await asyncio.to_thread(
                        self._generate_rendered, [p.request for p in batch], [item for _, item in good]
                    )
                except Exception as error:  # fail this batch's calls, keep serving the others
                    failure = error if isinstance(error, BackendError) else BackendError(
                        f"{self.model}: generation failed: {type(error).__name__}: {error}"
                    )
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(failure)
                    continue
                for pending, response in zip(batch, responses):
                    if not pending.future.done():
                        pending.future.set_result(response)

    def _ensure_batcher(self) -> None:
        loop = asyncio.get_running_loop()
        if self._batcher is None or self._loop is not loop or self._batcher.done():
            self._loop = loop
            self._pending = []
            self._wakeup = asyncio.Event()
            self._batcher = loop.create_task(self._run_batches())

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self._ensure_batcher()
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(request, future))
        self._wakeup.set()
        return await future

    def chat_batch_sync(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Generate ``requests`` as one batch, synchronously (no event loop needed)."""
        return self._generate(list(requests))

    async def aclose(self) -> None:
        if self._batcher is not None and not self._batcher.done():
            self._batcher.cancel()
            try:
                await self._batcher
            except asyncio.CancelledError:
                pass
        self._batcher = None

    def __repr__(self) -> str:
        return f"TransformersBackend(model={self.model!r}, batch_size={self.batch_size}, device={self.device!r})"
