"""``TransformersBackend``: a local model run in-process, batched.

Text LLMs load with ``AutoModelForCausalLM`` + the tokenizer's chat template; vision-language models
(a config with a ``vision_config``) with ``AutoModelForImageTextToText`` + its processor (the architecture registry, `recipes.architectures`), the
``data:`` URL images of the request decoded to PIL images. Model names go through
``local_models.resolve_model``, so ``smollm2`` and ``tiny-llava`` work offline and Hub ids work online.

Concurrent ``chat()`` calls are collected into batches of up to ``batch_size`` requests with the same
generation settings, left-padded, and generated in a worker thread so that the event loop keeps going
(greedy when ``temperature == 0``). ``json_schema`` is not enforced (no constrained decoding): the
prompt must ask for JSON.

The same plumbing serves the eval judges (`eval.judges.hf`): ``load_model`` (base model + optional LoRA
adapter + 4-bit, with a ``fingerprint`` of the weights), ``render_chat``, ``encode`` (left padding),
``last_position_logits`` and ``answer_tokens`` (the first token where answers' renderings differ, read
in context: choice scoring here and the judges' verdict tokens both use it).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
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


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def quiet_bitsandbytes_kernel_notice() -> None:
    """Drop one import-time warning of bitsandbytes, which peft and trl import whether 4-bit is used or not: on CPUs
    with AVX512-BF16 it tries to fetch an optional CPU 4-bit kernel from the Hub and, failing, logs "Failed to load
    CPU gemm_4bit_forward from kernels-community ... pip install kernels" on every start. The kernel only speeds up
    4-bit matmuls on the CPU; bitsandbytes falls back to its own code. Every other bitsandbytes message is kept."""
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(existing, _DropMessage) for existing in logger.filters):
        logger.addFilter(_DropMessage("Failed to load CPU gemm_4bit_forward"))


quiet_bitsandbytes_kernel_notice()


@dataclass
class _Pending:
    request: ChatRequest
    future: asyncio.Future


JUDGE_METADATA = "judge_metadata.json"


@dataclass
class LoadedModel:
    """A model ready to run: weights (+ LoRA adapter), its processor (VLMs) and tokenizer (left padding),
    and ``fingerprint``, what identifies its outputs (model revision or weights fingerprint, adapter hash)."""

    model: Any
    processor: Any  # the multimodal processor of a VLM, else the tokenizer
    tokenizer: Any
    is_multimodal: bool
    base_model: str
    adapter: str | None = None
    adapter_metadata: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one forward/generate at a time


def find_adapter_metadata(adapter: str | Path) -> Path | None:
    """The recipes' ``judge_metadata.json`` of an adapter: in its folder or the run folder above it, or in
    the adapter's Hub repo when ``adapter`` is a repo id (None when there is none: trained elsewhere)."""
    local = Path(adapter)
    if local.exists():
        return next((c for c in (local / JUDGE_METADATA, local.parent / JUDGE_METADATA) if c.is_file()), None)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(str(adapter), JUDGE_METADATA))
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError):
        return None


def read_adapter_metadata(adapter: str | Path) -> dict[str, Any]:
    """The adapter's ``judge_metadata.json`` (`find_adapter_metadata`) parsed ({} if none)."""
    path = find_adapter_metadata(adapter)
    if path is None:
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); re-run training or delete the file") from error


_EDGE = 1 << 20


def _file_fingerprint(path: Path, *, full: bool) -> str:
    """sha256 of a file (``full``), or of its size plus its first and last MiB (big base-model weights)."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if full or size <= 2 * _EDGE:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(str(size).encode())
            digest.update(handle.read(_EDGE))
            handle.seek(size - _EDGE)
            digest.update(handle.read(_EDGE))
    return digest.hexdigest()


def _weights_fingerprint(folder: Path, *, full: bool) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in {".safetensors", ".bin", ".json"})
    for path in files:
        digest.update(f"{path.name}:{_file_fingerprint(path, full=full or path.suffix == '.json')}".encode())
    return digest.hexdigest()[:16]


def hub_commit(path: str | Path, revision: str | None, filename: str = "config.json") -> str | None:
    """The commit a Hub repo id was loaded from: the snapshot folder its ``filename`` sits in (a branch or
    a tag resolves to the commit it points to; works offline from the cache). ``None`` for a local path."""
    if Path(path).exists():
        return None
    from huggingface_hub import hf_hub_download

    snapshot = Path(hf_hub_download(str(path), filename, revision=revision)).parent
    return snapshot.name if snapshot.parent.name == "snapshots" else None


def model_fingerprint(name: str, path: str, config, adapter: str | Path | None,
                      revision: str | None = None) -> dict[str, Any]:
    """What identifies a loaded model's outputs: the Hub commit it was loaded from, else a fingerprint of
    the local weights (config + size and edges of every weight file), and the sha256 of the adapter files."""
    commit = getattr(config, "_commit_hash", None) or hub_commit(path, revision)
    fingerprint: dict[str, Any] = {"base_model": name, "revision": commit}
    if commit is None and Path(path).is_dir():
        fingerprint["weights"] = _weights_fingerprint(Path(path), full=False)
    if adapter is not None and Path(adapter).is_dir():
        fingerprint["adapter_sha256"] = _weights_fingerprint(Path(adapter), full=True)
    elif adapter is not None:  # a Hub adapter id: the commit PEFT loaded
        fingerprint["adapter_revision"] = hub_commit(adapter, None, "adapter_config.json")
    return fingerprint


def resolve_pinned(name: str, revision: str | None) -> tuple[str, dict[str, Any]]:
    """The path to load ``name`` from and the ``from_pretrained`` keywords that pin ``revision``. A revision
    pins a Hub id only: given with a local folder or an offline alias it is an error, never ignored."""
    from local_models import resolve_model

    path = resolve_model(name)
    if revision is None:
        return path, {}
    if path != name or Path(path).exists():
        raise ValueError(f"revision {revision!r} given for {name!r}, which is a local model ({path}); a revision "
                         "pins a Hub id only: drop it (the local weights are fingerprinted instead)")
    return path, {"revision": revision}


def load_model(
    name: str,
    adapter: str | Path | None = None,
    *,
    load_in_4bit: bool = False,
    dtype: str = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> LoadedModel:
    """Load a (V)LM: Hub id (at ``revision`` when given), local dir or offline alias (``smollm2``,
    ``tiny-llava``), optionally in 4-bit, optionally with a LoRA adapter; the tokenizer pads on the left. A
    config with a ``vision_config`` loads ``AutoModelForImageTextToText`` + its processor (through
    `recipes.architectures.load_processor`), anything else ``AutoModelForCausalLM``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    path, pin = resolve_pinned(name, revision)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **pin)
    multimodal = getattr(config, "vision_config", None) is not None
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, **pin}
    if dtype != "auto":
        kwargs["dtype"] = getattr(torch, dtype)
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
        kwargs["device_map"] = device or "auto"
    model_class = AutoModelForImageTextToText if multimodal else AutoModelForCausalLM
    model = model_class.from_pretrained(path, **kwargs)
    if not load_in_4bit:
        model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if multimodal:  # the architecture registry knows each VLM's processor (and loads it without torchvision)
        from recipes.architectures import load_processor

        processor = load_processor(path, config.model_type, trust_remote_code=trust_remote_code, **pin)
    else:
        processor = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **pin)
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    metadata = read_adapter_metadata(adapter) if adapter else {}
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return LoadedModel(
        model=model, processor=processor, tokenizer=tokenizer, is_multimodal=multimodal, base_model=name,
        adapter=str(adapter) if adapter else None, adapter_metadata=metadata,
        fingerprint=model_fingerprint(name, path, config, adapter, revision),
    )


_LOADED: dict[tuple, LoadedModel] = {}
_LOADING = threading.Lock()


def shared_model(name: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False,
                 revision: str | None = None) -> LoadedModel:
    """Load a model once per (path, device, dtype): two roles (or a backend and a judge) naming the same
    model share one copy. No adapter: an adapter-wrapped model is loaded with `load_model`."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    from local_models import resolve_model

    key = (resolve_model(name), device, dtype, trust_remote_code, revision)
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = load_model(name, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
                                      revision=revision)
        return _LOADED[key]


# ------------------------------------------------------------------------------ rendering and scoring


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
        revision: str | None = None,
    ):
        import torch
        from transformers import AutoConfig

        if batch_size < 1:
            raise ValueError(f"backend 'transformers': batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self._torch = torch
        try:
            path, pin = resolve_pinned(model, revision)
        except ValueError as error:
            raise ValueError(f"backend 'transformers': {error}") from None
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **pin)
        self.is_vlm = getattr(config, "vision_config", None) is not None
        self.supports_images = self.is_vlm if supports_images is None else supports_images
        if self.supports_images and not self.is_vlm:
            raise ValueError(f"backend 'transformers': {model} is a text-only model; set supports_images: false")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        loaded = shared_model(model, device, dtype, trust_remote_code, revision)
        self.loaded = loaded
        self.hf_model, self.tokenizer = loaded.model, loaded.tokenizer
        self.processor = loaded.processor if self.is_vlm else None
        self._generate_lock = loaded.lock
        self._eos_ids = self._eos_token_ids()
        self._pending: list[_Pending] = []
        self._batcher: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
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
        the local weight files."""
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
        return encode(self.loaded, texts, images)

    def _choice_token_ids(self, prompt: str, choices: tuple[str, ...]) -> dict[str, int]:
        """Each choice's first token as it tokenizes right after this prompt (in context: a leading space
        or SentencePiece's ``▁`` merges into the choice's first token)."""
        def ids(text: str) -> list[int]:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

        try:
            found = distinguishing_tokens(ids(prompt), {choice: ids(prompt + choice) for choice in choices})
        except ValueError as error:
            raise BackendError(f"{self.model}: {error}") from None
        if found.prefix_ids:
            raise BackendError(f"{self.model}: the choices {list(choices)} do not start with distinct tokens "
                               "(they share a first token); move the shared part into answer_prefix")
        return found.ids

    def _score_rendered(self, requests: list[ChatRequest], rendered: list[tuple[str, list]]) -> list[ChatResponse]:
        """One forward pass; each choice's first-token log-probability at the last position (left padding)."""
        ids = [self._choice_token_ids(text, request.choices) for request, (text, _) in zip(requests, rendered)]
        inputs = self._inputs(rendered)
        logprobs = self._torch.log_softmax(last_position_logits(self.loaded, inputs), dim=-1)
        responses = []
        for row, choice_ids in enumerate(ids):
            scores = {choice: round(float(logprobs[row, token]), 6) for choice, token in choice_ids.items()}
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
