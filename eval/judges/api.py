"""API judge: any OpenAI-compatible chat endpoint (vLLM, `transformers serve`, OpenAI, ...), generative path,
through the one model-call layer (`modelcalls`: the OpenAI backend's client, concurrency and retries).

The prompt is the judge format (`judging.format.prompt_messages` by default) with the image inlined as a
data URL; the answer is read by the format's ``parse`` (unparseable -> ``label=None``, counted). A call
that still fails after the backend's retries raises `APIJudgeError` naming the item; nothing already
scored is lost because callers write predictions through `eval.predictions` as each chunk finishes.

``describe()`` (the judge's id and provenance) includes what the server says it serves under the model name
(``served``: the weights' path or Hub id that vLLM and SGLang list at ``GET /models``), so a checkpoint
re-served under the same name never reuses the old checkpoint's predictions.
"""

from __future__ import annotations

import io
from typing import Any

from eval.judges.base import Judge, Prediction
from eval.judges.images import load_image
from judging.format import RMS_FORMAT, JudgeFormat, ParsedAnswer
from judging.records import JudgeExample
from modelcalls import ChatRequest, ChatResponse, ModelCall, event_loop, make_backend, run_calls_sync
from modelcalls.base import Backend, image_part

_NOT_ASKED = object()


class APIJudgeError(RuntimeError):
    pass


def jpeg_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def openai_messages(messages: list[dict], image) -> list[dict]:
    """Judge-format messages -> OpenAI chat messages ({"type": "image"} becomes an inline image_url part;
    it is dropped when there is no image)."""
    converted = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            converted.append({"role": message["role"], "content": content})
            continue
        parts = []
        for part in content:
            if part["type"] == "image":
                if image is not None:
                    parts.append(image_part(jpeg_bytes(image)))
            else:
                parts.append({"type": "text", "text": part["text"]})
        converted.append({"role": message["role"], "content": parts})
    return converted


class JudgeCall(ModelCall[JudgeExample, ParsedAnswer]):
    """One judge call: the format's prompt (+ the example's image) -> the format's parse."""

    name = "judge"
    max_parse_retries = 0  # an unparseable verdict is a result (counted), not something to retry

    def __init__(self, judge_format: JudgeFormat, max_tokens: int, *, send_images: bool = True):
        self.format = judge_format
        self.max_tokens = max_tokens
        self.send_images = send_images
        self.template_version = f"{judge_format.name}-{judge_format.version}"

    def request(self, example: JudgeExample) -> ChatRequest:
        image = load_image(example.image, where=f"{example.source}/{example.source_id}") if self.send_images else None
        messages = openai_messages(self.format.build_messages(example), image)
        return ChatRequest(messages=tuple(messages), name=self.name, temperature=0.0, max_tokens=self.max_tokens)

    def parse(self, example: JudgeExample, response: ChatResponse) -> ParsedAnswer:
        return self.format.parse(response.text)


class APIJudge(Judge):
    name = "api"

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str | None = None,
        max_tokens: int = 64,
        max_workers: int = 4,
        retries: int = 3,
        timeout_s: float = 120.0,
        judge_format: JudgeFormat = RMS_FORMAT,
        backend: Backend | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.max_tokens = max_tokens
        self.max_workers = max_workers
        self.format = judge_format
        spec: dict[str, Any] = {"backend": "openai", "model": model, "base_url": self.base_url,
                                "max_concurrency": max_workers, "timeout_s": timeout_s, "max_retries": retries}
        if api_key_env:
            spec["api_key_env"] = api_key_env
        self.backend = backend if backend is not None else make_backend(spec)
        self._served: Any = _NOT_ASKED

    def with_format(self, judge_format: JudgeFormat, *, mode: str = "generative") -> APIJudge:
        """The same endpoint and client asked another question (e.g. `judging.format.REFUSAL_FORMAT`)."""
        return APIJudge(self.model, self.base_url, max_tokens=self.max_tokens, max_workers=self.max_workers,
                        judge_format=judge_format, backend=self.backend)

    def describe(self) -> dict[str, Any]:
        description = {"kind": self.name, "model": self.model, "base_url": self.base_url, "mode": "generative",
                       "format": self.format.name, "format_version": self.format.version,
                       "labels": list(self.format.labels), "images": self.backend.supports_images,
                       "decoding": {"temperature": 0.0, "max_tokens": self.max_tokens}}
        served = self.served()
        return {**description, **served} if served else description  # {"served": {"root": ...}}

    def served(self) -> dict[str, Any] | None:
        """What the server says it serves under ``model`` (``identify()`` of the backend), asked once."""
        if self._served is _NOT_ASKED:
            identify = getattr(self.backend, "identify", None)
            self._served = event_loop.run(self._ask(identify)) if identify is not None else None
        return self._served

    async def _ask(self, identify) -> dict[str, Any] | None:
        try:
            return await identify()
        finally:
            await self.backend.aclose()  # its connections belong to this loop

    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        call = JudgeCall(self.format, self.max_tokens, send_images=self.backend.supports_images)
        results = run_calls_sync(call, examples, self.backend, cache=None, concurrency=self.max_workers)
        for example, result in zip(examples, results, strict=True):
            if not result.ok:
                raise APIJudgeError(f"{example.source}/{example.source_id}: judge call to {self.base_url} failed "
                                    f"({result.error}); check --base-url and the server")
        return [Prediction(label=r.output.label, raw_text=r.output.raw_text, extras=dict(r.output.extras))
                for r in results]
