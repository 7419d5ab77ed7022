"""OpenAIBackend against a real local HTTP server that misbehaves on cue (tests/modelcalls/conftest.py)."""

import asyncio
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from modelcalls import BackendError, ChatRequest, make_backend, run_calls_sync
from modelcalls.retry import RetryPolicy, parse_retry_after

from .conftest import Reply, completion_body
from .helpers import EchoCall

SECRET = "sk-test-SECRET-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]


def backend_for(server, monkeypatch, **options):
    monkeypatch.setenv("RMS_TEST_KEY", SECRET)
    spec = {"backend": "openai", "model": "served-model", "base_url": server.base_url, "api_key_env": "RMS_TEST_KEY",
            "retry_base_delay_s": 0.01, "max_retries": 3, "timeout_s": 5, **options}
    return make_backend(spec)


def chat(backend, request=None):
    request = request or ChatRequest(messages=({"role": "user", "content": "hi"},), max_tokens=20, seed=3)

    async def main():
        try:
            return await backend.chat(request)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def test_sends_an_openai_chat_request_and_reads_text_usage_and_finish_reason(scripted_server, monkeypatch):
    scripted_server.replies = [Reply(body=completion_body("hello", finish_reason="length", prompt_tokens=12, completion_tokens=20))]
    response = chat(backend_for(scripted_server, monkeypatch))
    assert (response.text, response.finish_reason, response.truncated) == ("hello", "length", True)
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (12, 20)
    [received] = scripted_server.received
    assert received.body == {"model": "served-model", "messages": [{"role": "user", "content": "hi"}],
                             "temperature": 0.0, "max_tokens": 20, "seed": 3}
    assert received.headers["Authorization"] == f"Bearer {SECRET}"


def test_429_with_retry_after_seconds_is_honoured_then_succeeds(scripted_server, monkeypatch):
    scripted_server.replies = [Reply(429, {"error": "slow down"}, {"Retry-After": "1"}), Reply(body=completion_body("done"))]
    assert chat(backend_for(scripted_server, monkeypatch)).text == "done"
    first, second = scripted_server.received
    assert second.at - first.at >= 0.9  # waited as told, not the 0.01 s backoff


def test_500_and_a_slow_answer_are_retried(scripted_server, monkeypatch):
    scripted_server.replies = [
        Reply(500, "internal error"),
        Reply(delay_s=1.5, body=completion_body("too late")),
        Reply(body=completion_body("finally")),
    ]
    backend = backend_for(scripted_server, monkeypatch, timeout_s=0.5)
    assert chat(backend).text == "finally"
    assert len(scripted_server.received) == 3


def test_gives_up_after_max_retries_with_status_and_body_but_never_the_key(scripted_server, monkeypatch):
    scripted_server.replies = [Reply(503, body="", echo_authorization=True) for _ in range(10)]
    backend = backend_for(scripted_server, monkeypatch, max_retries=2)
    with pytest.raises(BackendError) as caught:
        chat(backend)
    message = str(caught.value)
    assert len(scripted_server.received) == 3
    assert "gave up after 3 attempts" in message and "HTTP 503" in message and "bad key: Bearer ***" in message
    assert SECRET not in message and SECRET[:8] not in message
    assert caught.value.status == 503
    assert SECRET not in repr(backend) and "key from $RMS_TEST_KEY" in repr(backend)


def test_a_200_that_is_not_a_completion_is_retried_then_named_with_an_excerpt(scripted_server, monkeypatch):
    """A proxy's HTML page or a JSON error object answered with 200 is no answer: retried like a 5xx, and
    the final error quotes what came back."""
    scripted_server.replies = [Reply(200, "<html>gateway says hi</html>"), Reply(200, {"object": "error"}),
                               Reply(body=completion_body("done"))]
    assert chat(backend_for(scripted_server, monkeypatch)).text == "done"
    assert len(scripted_server.received) == 3

    scripted_server.replies = [Reply(200, {"object": "error"}), Reply(200, "<html>gateway says hi</html>")]
    with pytest.raises(BackendError) as caught:
        chat(backend_for(scripted_server, monkeypatch, max_retries=1))
    assert "gave up after 2 attempts; last error: malformed completion body: <html>gateway says hi</html>" in str(caught.value)


def test_client_errors_fail_at_once(scripted_server, monkeypatch):
    scripted_server.replies = [Reply(401, {"error": {"message": "invalid api key"}})]
    with pytest.raises(BackendError, match="HTTP 401 .*invalid api key"):
        chat(backend_for(scripted_server, monkeypatch))
    assert len(scripted_server.received) == 1


def test_unreachable_server_is_a_backend_error_after_retries(monkeypatch):
    backend = make_backend({"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                            "max_retries": 1, "retry_base_delay_s": 0.01})
    with pytest.raises(BackendError, match="gave up after 2 attempts; last error: connection error"):
        chat(backend)


def test_structured_output_is_requested_and_dropped_once_the_server_rejects_it(scripted_server, monkeypatch):
    schema = {"title": "Verdict", "type": "object", "properties": {"verdict": {"type": "string"}}}
    scripted_server.replies = [
        Reply(400, {"error": {"message": "Unknown parameter: 'response_format'"}}),
        Reply(body=completion_body('{"verdict": "safe"}')),
        Reply(body=completion_body('{"verdict": "unsafe"}')),
    ]
    backend = backend_for(scripted_server, monkeypatch)
    request = ChatRequest(messages=({"role": "user", "content": "judge"},), json_schema=schema)

    async def main():
        try:
            return [await backend.chat(request), await backend.chat(request)]
        finally:
            await backend.aclose()

    first, second = asyncio.run(main())
    assert (first.text, second.text) == ('{"verdict": "safe"}', '{"verdict": "unsafe"}')
    sent = [r.body for r in scripted_server.received]
    assert sent[0]["response_format"] == {"type": "json_schema", "json_schema": {"name": "Verdict", "schema": schema}}
    assert "response_format" not in sent[1] and "response_format" not in sent[2]
    assert backend.structured_output is False


def test_refusal_and_empty_content_are_returned_for_the_parser(scripted_server, monkeypatch):
    refusal = {"choices": [{"message": {"content": None, "refusal": "I can't help with that."}, "finish_reason": "stop"}]}
    scripted_server.replies = [Reply(body=refusal), Reply(body=completion_body(""))]
    backend = backend_for(scripted_server, monkeypatch)
    assert chat(backend).text == "I can't help with that."
    assert chat(backend).text == ""


def test_the_backend_survives_several_event_loops(scripted_server, monkeypatch):
    backend = backend_for(scripted_server, monkeypatch)
    for _ in range(2):  # two pipeline steps, each its own asyncio.run
        results = run_calls_sync(EchoCall(), ["a", "b"], backend, cache=None, concurrency=2)
        assert [r.output for r in results] == ["ok", "ok"]
    asyncio.run(backend.aclose())


def test_a_named_but_unset_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("RMS_MISSING_KEY", raising=False)
    with pytest.raises(ValueError, match=r"\$RMS_MISSING_KEY, which is not set"):
        make_backend({"backend": "openai", "model": "m", "api_key_env": "RMS_MISSING_KEY"})


def test_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(formatdate(time.time() + 30, usegmt=True)) == pytest.approx(30, abs=2)
    assert parse_retry_after(formatdate(time.time() - 30, usegmt=True)) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_is_full_jitter_capped_and_retry_after_is_capped_too():
    policy = RetryPolicy(max_retries=5, base_delay_s=1.0, max_delay_s=4.0)
    delays = [policy.delay(retry) for retry in range(6) for _ in range(50)]
    assert all(0 <= d <= 4.0 for d in delays) and max(delays) > 2.0
    assert all(policy.delay(0) <= 1.0 for _ in range(50))
    assert policy.delay(0, retry_after=120) == 4.0


def test_retry_after_as_an_http_date_is_honoured(scripted_server, monkeypatch):
    when = formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1-2 s from now
    scripted_server.replies = [Reply(503, "busy", {"Retry-After": when}), Reply(body=completion_body("done"))]
    assert chat(backend_for(scripted_server, monkeypatch)).text == "done"
    first, second = scripted_server.received
    assert second.at - first.at >= 0.9


def test_openai_key_is_sent_only_where_it_was_meant_to_go(scripted_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    # A third-party or local server without api_key_env gets no Authorization header...
    local = make_backend({"backend": "openai", "model": "m", "base_url": scripted_server.base_url})
    chat(local)
    assert "Authorization" not in scripted_server.received[0].headers
    assert repr(local).endswith("no key)")
    # ...while api.openai.com picks up $OPENAI_API_KEY by default (not called here: no internet).
    official = make_backend({"backend": "openai", "model": "gpt-4o"})
    assert official.api_key_env == "OPENAI_API_KEY" and SECRET not in repr(official)
    assert repr(official) == "OpenAIBackend(model='gpt-4o', base_url='https://api.openai.com/v1', key from $OPENAI_API_KEY)"


def identify(backend):
    async def main():
        try:
            return await backend.identify()
        finally:
            await backend.aclose()

    return asyncio.run(main())


def test_identify_names_the_weights_the_server_serves_under_the_model_name(scripted_server, monkeypatch):
    """vLLM and SGLang list each served name with the path or Hub id of its weights (``root``): that is what
    enters provenance, fingerprints and cache keys, so other weights re-served under the same name are
    never taken for the old ones."""
    scripted_server.models = [{"id": "other", "root": "/ckpt/other"},
                              {"id": "served-model", "object": "model", "root": "/ckpt/step-500", "parent": None,
                               "created": 1764600000, "max_model_len": 4096}]
    assert identify(backend_for(scripted_server, monkeypatch)) == {"served": {"root": "/ckpt/step-500"}}
    scripted_server.models[1]["root"] = "/ckpt/step-900"
    assert identify(backend_for(scripted_server, monkeypatch)) == {"served": {"root": "/ckpt/step-900"}}


def test_identify_is_none_where_the_server_says_no_more_than_the_name(scripted_server, monkeypatch):
    assert identify(backend_for(scripted_server, monkeypatch)) is None  # no /models (404)
    scripted_server.models = [{"id": "served-model", "object": "model", "owned_by": "openai"}]  # the OpenAI API
    assert identify(backend_for(scripted_server, monkeypatch)) is None
    scripted_server.models = [{"id": "some-other-model", "root": "/ckpt/x"}]
    assert identify(backend_for(scripted_server, monkeypatch)) is None


def test_replicas_serving_different_weights_under_one_name_are_refused(monkeypatch):
    from .conftest import ScriptedServer

    first, second = ScriptedServer(), ScriptedServer()
    try:
        first.models = [{"id": "served-model", "root": "/ckpt/step-500"}]
        second.models = [{"id": "served-model", "root": "/ckpt/step-900"}]
        urls = [first.base_url, second.base_url]
        with pytest.raises(ValueError, match="the replicas serve different weights under this name") as caught:
            identify(make_backend({"backend": "openai", "model": "served-model", "base_url": urls}))
        assert first.base_url in str(caught.value) and "/ckpt/step-900" in str(caught.value)

        second.models = first.models
        down = "http://127.0.0.1:9/v1"  # a replica that cannot be reached says nothing: the others decide
        backend = make_backend({"backend": "openai", "model": "served-model", "base_url": [*urls, down]})
        assert identify(backend) == {"served": {"root": "/ckpt/step-500"}}
    finally:
        first.close()
        second.close()



TLS = Path(__file__).resolve().parent / "tls"  # a test-only CA and the 127.0.0.1 certificate it signed
_HTTPS_CLIENT = """
import asyncio, sys
from modelcalls import ChatRequest, make_backend

async def main():
    backend = make_backend({"backend": "openai", "model": "m", "base_url": sys.argv[1], "max_retries": 0})
    try:
        print((await backend.chat(ChatRequest(messages=({"role": "user", "content": "hi"},)))).text)
    except Exception as error:
        print(f"{type(error).__name__}: {error}")
    finally:
        await backend.aclose()

asyncio.run(main())
"""


def test_https_verifies_the_server_and_trusts_a_private_ca_from_ssl_cert_file():
    """HTTPS servers (the OpenAI API, a cluster endpoint behind TLS) are verified: a certificate that no
    trusted CA signed is refused, saying why; a private CA is trusted through $SSL_CERT_FILE. Each client
    runs in a process of its own, since trust roots are read when a process starts."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            data = json.dumps(completion_body("over tls")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "server.pem", TLS / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/v1"
    without_ca_file = {key: value for key, value in os.environ.items() if key != "SSL_CERT_FILE"}

    def client(**env) -> str:
        done = subprocess.run([sys.executable, "-c", _HTTPS_CLIENT, url], capture_output=True, text=True,
                              timeout=120, cwd=REPO, env={**without_ca_file, "PYTHONPATH": str(REPO), **env})
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    try:
        refused = client()
        assert refused.startswith("BackendError") and "invalid peer certificate: UnknownIssuer" in refused
        assert client(SSL_CERT_FILE=str(TLS / "ca.pem")) == "over tls"
    finally:
        server.shutdown()
        server.server_close()
