"""A credential in a config never leaves the process: header values and credential-named keys are
redacted in every file a run writes, in errors, and in what the backend reports."""

from __future__ import annotations

import asyncio
import http.server
import threading

import pytest
import yaml

from generation.engine.config import RunConfig
from generation.run import run
from modelcalls import BackendError, ChatRequest, make_backend
from modelcalls.redact import REDACTED, is_secret_name, redact
from modelcalls.scripted_backend import ScriptedBackend
from tests.generation_pipeline.conftest import shared_photos, write_folder
from tests.generation_pipeline.fake_model import respond

HEADER_SECRET = "azure-key-5f1e9c0d7b"
BODY_SECRET = "tok-88aa77bb66cc"


@pytest.mark.parametrize("name", ["api-key", "X-Api-Key", "Authorization", "accessToken", "client_secret", "password",
                                  "Ocp-Apim-Subscription-Key", "cookie"])
def test_credential_names_are_recognised(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["api_key_env", "max_tokens", "prompt_tokens", "max_tokens_field", "model", "base_url",
                                  "keyword", "monkey", "token_file"])
def test_names_that_only_refer_to_a_secret_are_kept(name):
    assert not is_secret_name(name)


def test_redact_hides_header_values_and_credential_values_only():
    data = {"generator": {"headers": {"X-Trace": "abc", "api-key": HEADER_SECRET}, "api_key_env": "AZURE_KEY",
                          "extra_body": {"session_token": BODY_SECRET, "top_p": 0.9}}, "max_tokens": {"query": 60}}
    assert redact(data) == {"generator": {"headers": {"X-Trace": REDACTED, "api-key": REDACTED}, "api_key_env": "AZURE_KEY",
                                          "extra_body": {"session_token": REDACTED, "top_p": 0.9}}, "max_tokens": {"query": 60}}
    assert data["generator"]["headers"]["api-key"] == HEADER_SECRET  # the input is not changed


def openai_role(model: str) -> dict:
    return {"backend": "openai", "model": model, "base_url": "http://127.0.0.1:9/v1", "api_key_env": "RMS_TEST_KEY_NAME",
            "headers": {"api-key": HEADER_SECRET}, "extra_body": {"session_token": BODY_SECRET}}


def test_no_file_a_run_writes_holds_a_secret(tmp_path, photo_folder_with_manifest):
    config = RunConfig.from_dict({"input": {"kind": "folder", "path": str(photo_folder_with_manifest)}, "exemplars": None,
                                  "generator": openai_role("g"), "verifier": openai_role("v"), "concurrency": 2})
    scripted = ScriptedBackend(respond=respond, supports_images=False)
    report = run(config, tmp_path / "run", backends={"generator": scripted, "verifier": scripted}, show_progress=False)
    assert report["release"], report  # a release was written, so pipeline_config.yaml exists
    written = [path for path in (tmp_path / "run").rglob("*") if path.is_file()]
    assert any(path.name == "pipeline_config.yaml" for path in written) and any(path.name == "summary.json" for path in written)
    for path in written:
        data = path.read_bytes()
        assert HEADER_SECRET.encode() not in data and BODY_SECRET.encode() not in data, path
    recorded = yaml.safe_load((tmp_path / "run" / "release" / "pipeline_config.yaml").read_text())["run"]["generator"]
    assert recorded["headers"] == {"api-key": REDACTED} and recorded["api_key_env"] == "RMS_TEST_KEY_NAME"


@pytest.fixture
def photo_folder_with_manifest(tmp_path):
    photos = shared_photos(2)
    return write_folder(tmp_path / "photos", [(p.name, p.read_bytes(), d) for p, d in zip(photos, ["a cliff edge", "a stove"])])


@pytest.fixture
def echoing_server():
    """A 127.0.0.1 server that answers 401 with every request header echoed in the body (servers do)."""

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = ("unauthorized; you sent " + "; ".join(f"{k}: {v}" for k, v in self.headers.items())).encode()
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_header_echoed_by_the_server_is_scrubbed_from_the_error(echoing_server):
    backend = make_backend({"backend": "openai", "model": "m", "base_url": echoing_server, "max_retries": 0,
                            "headers": {"api-key": HEADER_SECRET}})

    async def call():
        try:
            return await backend.chat(ChatRequest(messages=({"role": "user", "content": "hi"},)))
        finally:
            await backend.aclose()

    with pytest.raises(BackendError) as caught:
        asyncio.run(call())
    assert "401" in str(caught.value) and HEADER_SECRET not in str(caught.value) and REDACTED in str(caught.value)
    assert HEADER_SECRET not in repr(backend)


def test_a_secret_a_server_echoes_in_its_model_listing_is_not_recorded(tmp_path, photo_folder_with_manifest, monkeypatch):
    """`GET /models` says which weights a name serves (`root`); a server that puts the key or a header there
    must not get it into shard/summary.json (the role's recorded provenance)."""
    from tests.modelcalls.conftest import ScriptedServer

    monkeypatch.setenv("RMS_TEST_KEY_NAME", "sk-live-0123456789abcdef")
    server = ScriptedServer()
    server.models = [{"id": "g", "root": f"/ckpt/step-500?key=sk-live-0123456789abcdef&h={HEADER_SECRET}"}]
    try:
        role = {**openai_role("g"), "base_url": server.base_url, "max_retries": 0}
        config = RunConfig.from_dict({"input": {"kind": "folder", "path": str(photo_folder_with_manifest)},
                                      "exemplars": None, "generator": role, "verifier": role})
        run(config, tmp_path / "run", show_progress=False)
    finally:
        server.close()
    summary = (tmp_path / "run" / "shard" / "summary.json").read_text()
    assert "/ckpt/step-500?key=" in summary  # what the server serves is still recorded
    assert "sk-live-0123456789abcdef" not in summary and HEADER_SECRET not in summary
