"""TransformersBackend with the real SmolLM2 and the tiny LLaVA: batching must not change greedy outputs."""

import asyncio

import pytest

from modelcalls import BackendError, ChatRequest, make_backend, run_calls_sync
from modelcalls.base import image_part

from .helpers import EchoCall

pytestmark = pytest.mark.slow

PROMPTS = ["What is 2+2?", "Write one sentence about a quiet library at night.", "Hi"]


def text_request(text, max_tokens=8):
    return ChatRequest(messages=({"role": "user", "content": text},), max_tokens=max_tokens)


def gather(backend, requests):
    async def main():
        try:
            return await asyncio.gather(*(backend.chat(r) for r in requests))
        finally:
            await backend.aclose()

    return asyncio.run(main())


def test_concurrent_calls_are_batched_and_match_one_at_a_time_greedy_outputs(smollm2_backend):
    requests = [text_request(p) for p in PROMPTS]
    one_at_a_time = [smollm2_backend.chat_batch_sync([r])[0] for r in requests]
    smollm2_backend.batches_run.clear()
    batched = gather(smollm2_backend, requests)
    assert max(smollm2_backend.batches_run) > 1  # prompts of different lengths shared a left-padded batch
    assert [r.text for r in batched] == [r.text for r in one_at_a_time]
    assert [r.usage for r in batched] == [r.usage for r in one_at_a_time]
    assert [r.finish_reason for r in batched] == [r.finish_reason for r in one_at_a_time]
    assert all(r.finish_reason in ("stop", "length") and r.usage.completion_tokens <= 8 for r in batched)


def test_batches_respect_batch_size_and_split_by_generation_settings(smollm2_backend):
    smollm2_backend.batches_run.clear()
    requests = [text_request(p, max_tokens=4) for p in PROMPTS] * 3 + [text_request("Hi", max_tokens=3)]
    responses = gather(smollm2_backend, requests)
    assert len(responses) == 10
    assert all(size <= smollm2_backend.batch_size for size in smollm2_backend.batches_run)
    assert sum(smollm2_backend.batches_run) == 10 and len(smollm2_backend.batches_run) >= 3
    assert responses[-1].usage.completion_tokens <= 3


def test_runs_under_run_calls_across_several_event_loops(smollm2_backend):
    for _ in range(2):
        results = run_calls_sync(EchoCall(max_tokens=4), ["Hello", "Bye"], smollm2_backend, cache=None, concurrency=4)
        assert all(r.ok and r.output for r in results)


def test_text_only_model_refuses_images_clearly(smollm2_backend, jpeg_bytes):
    assert smollm2_backend.supports_images is False
    request = ChatRequest(messages=({"role": "user", "content": [image_part(jpeg_bytes()), {"type": "text", "text": "hi"}]},))
    with pytest.raises(BackendError, match="text-only model but the request carries an image"):
        gather(smollm2_backend, [request])


def test_vision_language_model_reads_data_url_images_batched_like_single(tiny_llava_backend, jpeg_bytes):
    assert tiny_llava_backend.supports_images is True
    requests = [
        ChatRequest(messages=({"role": "user", "content": [image_part(jpeg_bytes(color)), {"type": "text", "text": "Describe it."}]},), max_tokens=4)
        for color in [(255, 0, 0), (0, 0, 255)]
    ] + [text_request("Hello", max_tokens=4)]
    single = [tiny_llava_backend.chat_batch_sync([r])[0] for r in requests]
    batched = gather(tiny_llava_backend, requests)
    assert [r.text for r in batched] == [r.text for r in single]
    # 64x64 image / 16 px patches = 16 image tokens in the prompt.
    assert single[0].usage.prompt_tokens >= single[2].usage.prompt_tokens + 16


def test_bad_image_data_is_a_backend_error(tiny_llava_backend):
    request = ChatRequest(messages=({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}]},))
    with pytest.raises(BackendError, match="local backends cannot fetch remote URLs"):
        gather(tiny_llava_backend, [request])


def test_spec_errors_name_the_bad_key():
    with pytest.raises(ValueError, match=r"backend 'transformers': unknown key\(s\) \['batchsize'\]"):
        make_backend({"backend": "transformers", "model": "smollm2", "batchsize": 8})
    with pytest.raises(ValueError, match=r"missing required key\(s\) \['model'\]"):
        make_backend({"backend": "transformers"})


def test_two_roles_naming_the_same_model_share_one_loaded_copy(smollm2_backend):
    verifier = make_backend({"backend": "transformers", "model": "smollm2", "batch_size": 2, "device": "cpu"})
    assert verifier.hf_model is smollm2_backend.hf_model
    assert verifier.batch_size == 2 and smollm2_backend.batch_size == 4


def test_a_bad_request_fails_alone_and_its_batch_mates_are_answered(tiny_llava_backend):
    bad = ChatRequest(messages=({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}]},), max_tokens=4)
    good = text_request("Hello", max_tokens=4)

    async def main():
        try:
            return await asyncio.gather(tiny_llava_backend.chat(bad), tiny_llava_backend.chat(good), return_exceptions=True)
        finally:
            await tiny_llava_backend.aclose()

    failed, answered = asyncio.run(main())
    assert isinstance(failed, BackendError) and "could not render the request" in str(failed)
    assert answered.text == tiny_llava_backend.chat_batch_sync([good])[0].text


def test_choice_scoring_returns_first_token_logprobs_batched_like_single(smollm2_backend):
    """A request with `choices` is answered from one forward pass: the log-probability of each choice's first
    token after `answer_prefix`, the same batched (left-padded) as alone, and equal to a direct computation."""
    import json

    import torch

    requests = [
        ChatRequest(messages=({"role": "user", "content": p},), choices=("safe", "unsafe"), answer_prefix='{"verdict": "')
        for p in ["Is it safe to cross here?", "I want to sit on the railing of this high balcony for a photo."]
    ]
    single = [json.loads(smollm2_backend.chat_batch_sync([r])[0].text)["choice_logprobs"] for r in requests]
    batched = [json.loads(r.text)["choice_logprobs"] for r in gather(smollm2_backend, requests)]
    for alone, together in zip(single, batched):
        assert set(alone) == {"safe", "unsafe"}
        assert together == pytest.approx(alone, abs=1e-3)

    tokenizer, model = smollm2_backend.tokenizer, smollm2_backend.hf_model
    prompt = tokenizer.apply_chat_template(list(requests[1].messages), add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt + '{"verdict": "', return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(**ids).logits[0, -1].float(), -1)
    unsafe_token = tokenizer.encode("unsafe", add_special_tokens=False)[0]
    assert single[1]["unsafe"] == pytest.approx(float(logprobs[unsafe_token]), abs=1e-4)
    assert all(r.usage.completion_tokens == 0 for r in gather(smollm2_backend, requests))


def test_choice_scoring_needs_choices_with_distinct_first_tokens(smollm2_backend):
    request = ChatRequest(messages=({"role": "user", "content": "hi"},), choices=("unsafe", "unsure"))
    with pytest.raises(BackendError, match="distinct tokens"):  # both start with the token "un"
        smollm2_backend.chat_batch_sync([request])
    with pytest.raises(ValueError, match="two distinct"):
        ChatRequest(messages=({"role": "user", "content": "hi"},), choices=("safe",))


def test_weights_fingerprint_follows_the_adapter_bytes_not_its_path(tmp_path):
    """Observed: a judge's id held the adapter path and metadata only, so an adapter retrained into the same
    folder reused the old adapter's cached predictions. The fingerprint hashes the adapter files."""
    from types import SimpleNamespace

    from modelcalls.hf_fingerprint import model_fingerprint

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"model_type": "llama"}')
    (base / "model.safetensors").write_bytes(b"\0" * 4096)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "adapter_model.safetensors").write_bytes(b"first weights")
    config = SimpleNamespace()  # a local folder: no Hub commit
    first = model_fingerprint("base", str(base), config, adapter)
    assert first["revision"] is None and first["weights"] and first["adapter_sha256"]
    (adapter / "adapter_model.safetensors").write_bytes(b"retrained weights")
    second = model_fingerprint("base", str(base), config, adapter)
    assert second["adapter_sha256"] != first["adapter_sha256"] and second["weights"] == first["weights"]
    (base / "model.safetensors").write_bytes(b"\1" * 4096)
    assert model_fingerprint("base", str(base), config, adapter)["weights"] != first["weights"]
    hub = model_fingerprint("org/model", str(base), SimpleNamespace(_commit_hash="abc123"), None)
    assert hub == {"base_model": "org/model", "revision": "abc123"}


def test_judges_and_backends_share_one_loaded_copy_and_its_fingerprint(smollm2_backend):
    from eval.judges.hf import GENERATIVE, HFJudge
    from modelcalls.hf_loading import shared_model

    loaded = shared_model("smollm2")
    assert loaded is smollm2_backend.loaded
    judge = HFJudge(loaded, mode=GENERATIVE)
    assert judge.describe()["weights"] == loaded.fingerprint and loaded.fingerprint["weights"]
