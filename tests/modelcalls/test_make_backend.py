"""make_backend: one role's YAML block -> a backend, with clear errors."""

import asyncio

import pytest
import yaml

from modelcalls import Backend, ChatRequest, make_backend
from modelcalls.openai_backend import OpenAIBackend
from modelcalls.scripted_backend import ScriptedBackend


def test_builds_each_backend_kind_from_yaml():
    roles = yaml.safe_load(
        """
        scene: {backend: openai, model: Qwen/Qwen2.5-VL-72B-Instruct, base_url: "http://127.0.0.1:8000/v1",
                max_concurrency: 16, timeout_s: 60, max_retries: 5}
        verifier: {backend: scripted, model: fake-judge, replies: ['{"verdict": "unsafe"}']}
        """
    )
    scene = make_backend(roles["scene"])
    assert isinstance(scene, OpenAIBackend) and isinstance(scene, Backend)
    assert (scene.model, scene.base_url, scene.max_concurrency, scene.policy.max_retries) == (
        "Qwen/Qwen2.5-VL-72B-Instruct", "http://127.0.0.1:8000/v1", 16, 5)
    verifier = make_backend(roles["verifier"])
    assert isinstance(verifier, ScriptedBackend) and verifier.model == "fake-judge"
    answer = asyncio.run(verifier.chat(ChatRequest(messages=({"role": "user", "content": "x"},))))
    assert answer.text == '{"verdict": "unsafe"}'


def test_scripted_respond_can_name_a_function_for_yaml_runs():
    backend = make_backend({"backend": "scripted", "respond": "tests.modelcalls.helpers:always_unsafe"})
    request = ChatRequest(messages=({"role": "user", "content": "x"},))
    assert asyncio.run(backend.chat(request)).text == '{"verdict": "unsafe"}'


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"backend": "vllm", "model": "m"}, r"backend: 'vllm' is not one of \['openai', 'scripted', 'transformers'\]"),
        ({"model": "m"}, "backend: None is not one of"),
        ({"backend": "openai", "model": "m", "concurrency": 4}, r"unknown key\(s\) \['concurrency'\]"),
        ({"backend": "openai"}, r"missing required key\(s\) \['model'\]"),
        ({"backend": "scripted"}, "exactly one of respond=<function> or replies"),
        ({"backend": "scripted", "respond": "nomodule"}, "respond must be 'module:function'"),
        ("openai", "must be a mapping"),
    ],
)
def test_bad_specs_get_errors_that_say_what_to_fix(spec, message):
    with pytest.raises(ValueError, match=message):
        make_backend(spec)
