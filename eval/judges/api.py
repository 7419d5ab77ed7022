"""API judge: any OpenAI-compatible chat endpoint (vLLM, `transformers serve`, OpenAI, ...), generative path.

The prompt is the shared judge format (`judging.format.prompt_messages`) with the image inlined as a data
URL; the answer is parsed with `judging.format.parse_verdict` (unparseable -> ``label=None``, counted).
HTTP failures after retries raise `APIJudgeError` naming the item; nothing already scored is lost because
callers write predictions through `eval.predictions` as each chunk finishes.
"""

from __future__ import annotations

import base64
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from eval.judges.base import Judge, Prediction
from eval.judges.hf import RMS_FORMAT, JudgeFormat
from eval.judges.images import load_image
from judging.records import JudgeExample


class APIJudgeError(RuntimeError):
    pass


def _data_url(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def openai_messages(messages: list[dict], image) -> list[dict]:
    """Judge-format messages -> OpenAI chat messages ({"type": "image"} becomes an inline image_url part)."""
    converted = []
    for message in messages:
        parts = []
        for part in message["content"]:
            if part["type"] == "image":
                if image is not None:
                    parts.append({"type": "image_url", "image_url": {"url": _data_url(image)}})
            else:
                parts.append({"type": "text", "text": part["text"]})
        converted.append({"role": message["role"], "content": parts})
    return converted


class APIJudge(Judge):
    name = "api"

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_tokens: int = 64,
        max_workers: int = 4,
        retries: int = 3,
        timeout_s: float = 120.0,
        judge_format: JudgeFormat = RMS_FORMAT,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or os.environ.get(api_key_env) or "EMPTY"
        self.max_tokens = max_tokens
        self.max_workers = max_workers
        self.retries = retries
        self.timeout_s = timeout_s
        self.format = judge_format

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "model": self.model, "base_url": self.base_url, "mode": "generative",
                "format": self.format.name, "format_version": self.format.version, "max_tokens": self.max_tokens}

    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        import httpx

        with httpx.Client(timeout=self.timeout_s) as client, ThreadPoolExecutor(self.max_workers) as pool:
            return list(pool.map(lambda example: self._score_one(client, example), examples))

    def _score_one(self, client, example: JudgeExample) -> Prediction:
        where = f"{example.source}/{example.source_id}"
        image = load_image(example.image, where=where)
        body = {
            "model": self.model,
            "messages": openai_messages(self.format.build_messages(example), image),
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
        }
        text = self._post(client, body, where)
        parsed = self.format.parse(text)
        return Prediction(label=parsed.label, p_unsafe=parsed.p_unsafe, raw_text=text, extras=parsed.extras)

    def _post(self, client, body: dict, where: str) -> str:
        url = f"{self.base_url}/chat/completions"
        headers = {"Authorization": f"Bearer {self.api_key}"}
        error = "no attempt made"
        for attempt in range(self.retries):
            try:
                response = client.post(url, json=body, headers=headers)
            except Exception as exc:  # connection errors: retry
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()["choices"][0]["message"]["content"] or ""
                    except (ValueError, KeyError, IndexError, TypeError):
                        raise APIJudgeError(
                            f"{where}: {url} answered 200 but not an OpenAI chat completion: {response.text[:200]!r}"
                        ) from None
                error = f"HTTP {response.status_code}: {response.text[:200]!r}"
                if response.status_code < 500 and response.status_code != 429:
                    break
            time.sleep(min(2**attempt, 10) * 0.5)
        raise APIJudgeError(f"{where}: judge call to {url} failed ({error}); check --judge-base-url and the server")
