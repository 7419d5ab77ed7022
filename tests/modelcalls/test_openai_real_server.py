"""OpenAIBackend against a real ``transformers serve`` running the local SmolLM2 on 127.0.0.1."""

import pytest

from modelcalls import CallCache, ChatRequest, make_backend, run_calls_sync

from .helpers import EchoCall

pytestmark = pytest.mark.slow


@pytest.fixture
def served_backend(smollm2_server, smollm2_dir):
    # transformers serve pinned to a local directory serves it under that path as the model id.
    return make_backend({"backend": "openai", "model": str(smollm2_dir), "base_url": smollm2_server,
                         "max_concurrency": 2, "timeout_s": 120, "max_retries": 1})


def test_real_server_answers_with_text_and_token_usage(served_backend, tmp_path):
    items = ["What is the capital of France?", "Say hello."]
    with CallCache(tmp_path / "c.sqlite") as cache:
        results = run_calls_sync(EchoCall(max_tokens=6), items, served_backend, cache=cache, concurrency=2)
        assert all(r.ok and r.output.strip() for r in results), [r.error for r in results]
        assert all(r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 6 for r in results)
        again = run_calls_sync(EchoCall(max_tokens=6), items, served_backend, cache=cache, concurrency=2, close_backend=True)
    assert [r.output for r in again] == [r.output for r in results] and all(r.cached for r in again)


def test_served_greedy_answer_matches_the_in_process_backend(served_backend, smollm2_backend):
    import asyncio

    request = ChatRequest(messages=({"role": "user", "content": "Name three fruits."},), max_tokens=8)

    async def main():
        try:
            return await served_backend.chat(request), await smollm2_backend.chat(request)
        finally:
            await served_backend.aclose()
            await smollm2_backend.aclose()

    served, local = asyncio.run(main())
    assert served.text == local.text
    assert served.usage.completion_tokens == local.usage.completion_tokens


def test_json_schema_requests_are_accepted(served_backend):
    import asyncio

    request = ChatRequest(
        messages=({"role": "user", "content": 'Answer in JSON like {"color": "..."}: what color is the sky?'},),
        max_tokens=12,
        json_schema={"type": "object", "properties": {"color": {"type": "string"}}},
    )

    async def main():
        try:
            return await served_backend.chat(request)
        finally:
            await served_backend.aclose()

    response = asyncio.run(main())
    assert response.text and response.finish_reason in ("stop", "length")
