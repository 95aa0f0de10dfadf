"""A recording HTTP proxy in front of the real llama.cpp server: every exchange is kept (request body as Vigilus
sent it, status, answer), so a test can say which request the server accepted; and a run's first step can be
driven.

Driving a step: SmolLM2-135M calls tools when asked, but the command line it writes is noise, and a test of the
wiring needs a call whose effect it knows. `drive(tool, arguments)` makes the next chat request name that tool
(tool_choice {"type": "function", ...}, so the real server generates a real call to it) and then puts the given
arguments in place of the generated ones. Everything else about that answer -- ids, shape, content, usage -- is
the server's own; every other request goes through as Vigilus sent it, but for two sampling settings (below).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

# Every chat request is decoded greedily and briefly: the same prompt then gets the same answer on every run (a
# test cannot pass on one run and fail on the next by the model's dice), and a 135M model that rambles on does
# not spend the suite's time budget. Only these two sampling settings change; what Vigilus sent is recorded as
# it was sent.
ANSWER_CAP = 96


@dataclass
class Exchange:
    method: str
    path: str
    request: Any
    status: int
    answer: Any
    driven: bool = False
    elapsed_ms: float = 0.0  # the server's time for this request, as the proxy saw it (send to last byte)

    @property
    def is_chat(self) -> bool:
        return self.path.endswith("/chat/completions")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: RecordingProxy


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: without TCP_NODELAY the body waits ~40 ms for the client's
    # delayed ACK, which a benchmark would count as Vigilus's time.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        proxy = self.server.proxy
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw) if raw else None
        steer = None
        if self.path.endswith("/chat/completions") and body:
            steer = proxy._take_drive()
            sent = {**body, "temperature": 0.0, "max_tokens": min(body.get("max_tokens") or ANSWER_CAP, ANSWER_CAP)}
            if steer is not None:
                sent["tool_choice"] = {"type": "function", "function": {"name": steer[0]}}
            raw = json.dumps(sent).encode()
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
        started = time.perf_counter()
        upstream = httpx.request(self.command, proxy.upstream + self.path, content=raw, headers=headers, timeout=300)
        elapsed_ms = (time.perf_counter() - started) * 1000
        payload = upstream.content
        try:
            answer = upstream.json()
        except ValueError:
            answer = upstream.text
        if steer is not None and upstream.status_code == 200:
            calls = answer["choices"][0]["message"].get("tool_calls") or []
            for call in calls[:1]:
                call["function"]["arguments"] = json.dumps(steer[1])
            answer["choices"][0]["message"]["tool_calls"] = calls[:1]
            payload = json.dumps(answer).encode()
        with proxy._lock:
            proxy.exchanges.append(
                Exchange(self.command, self.path, body, upstream.status_code, answer, steer is not None, elapsed_ms)
            )
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", upstream.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class RecordingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removesuffix("/v1").rstrip("/")
        self.exchanges: list[Exchange] = []
        self._drives: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.proxy = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's base URL with /v1, as a person enters an OpenAI-style endpoint."""
        return f"http://127.0.0.1:{self._httpd.server_port}/v1"

    @property
    def chats(self) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if e.is_chat]

    def drive(self, tool: str, arguments: dict[str, Any]) -> None:
        """The next chat request calls `tool` with `arguments` (see the module docstring)."""
        with self._lock:
            self._drives.append((tool, arguments))

    def _take_drive(self) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            return self._drives.pop(0) if self._drives else None

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
