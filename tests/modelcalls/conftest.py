"""Fixtures for tests/modelcalls: real local servers on 127.0.0.1 and real local models."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def completion_body(text: str, *, finish_reason: str = "stop", prompt_tokens: int = 7, completion_tokens: int = 3) -> dict:
    return {
        "id": "test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


@dataclass
class Reply:
    """What the scripted server answers to one request."""

    status: int = 200
    body: dict | str = field(default_factory=lambda: completion_body("ok"))
    headers: dict = field(default_factory=dict)
    delay_s: float = 0.0
    echo_authorization: bool = False  # put the request's Authorization header into the body


@dataclass
class Received:
    at: float
    headers: dict
    body: dict


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 answering /v1/chat/completions from a queue of ``Reply`` (then 200 ok),
    and ``GET /v1/models`` with ``models`` (404 while it is ``None``)."""

    def __init__(self):
        self.replies: list[Reply] = []
        self.received: list[Received] = []
        self.models: list[dict] | None = None
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                models = server.models
                status, payload = (404, {"error": "not found"}) if models is None or not self.path.endswith("/models") \
                    else (200, {"object": "list", "data": models})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.received.append(Received(time.monotonic(), dict(self.headers), body))
                    reply = server.replies.pop(0) if server.replies else Reply()
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.body
                if reply.echo_authorization:
                    payload = {"error": {"message": f"bad key: {self.headers.get('Authorization')}"}}
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_server():
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def smollm2_dir():
    from local_models import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="session")
def smollm2_server(smollm2_dir, tmp_path_factory):
    """A real ``transformers serve`` pinned to the local SmolLM2 directory; yields its /v1 base URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cli = os.path.join(os.path.dirname(sys.executable), "transformers")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [cli, "serve", str(smollm2_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as health:
                    if health.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not ready after 90 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def smollm2_backend():
    from modelcalls import make_backend

    return make_backend({"backend": "transformers", "model": "smollm2", "batch_size": 4, "device": "cpu"})


@pytest.fixture(scope="session")
def tiny_llava_backend():
    from modelcalls import make_backend

    return make_backend({"backend": "transformers", "model": "tiny-llava", "batch_size": 4, "device": "cpu"})


@pytest.fixture
def jpeg_bytes():
    import io

    from PIL import Image

    def make(color=(200, 30, 30), size=(80, 60)) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", size, color).save(buffer, "JPEG")
        return buffer.getvalue()

    return make
