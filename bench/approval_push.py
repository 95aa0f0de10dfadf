"""How long an approver waits to see a new access request: request creation to the websocket frame.

A real daphne server (`daphne vigilus.asgi:application`, a subprocess) serves /ws/; an admin's browser is
played by an aiohttp websocket client (Origin of the site, the admin's session cookie), which joins the
`approvals` group like any approver's dashboard. This process plays the gateway: it calls
jit.services.request_access() for a strict Operator inside transaction.atomic(); on commit the request is
queued for notification (Celery, a real publish to the broker, no worker) and the pending list is rendered
and sent through the Redis channel layer to daphne, which writes it to the socket.

Each sample runs from just before the atomic block to the arrival, at the client, of the first frame that
names the new request (`id="request-<pk>"`). It is split in two: "commit" (create, audit, commit, broker
publish, render, group_send: all in this process) and "delivery" (from there to the frame at the client).

By default each measured request is then taken off the pending list (set expired with an ORM update, which
sends nothing), so every frame carries one pending request; with --backlog they stay pending and the
frame grows by one request each time (the page of a team that has not looked at its approvals).

Everything is throwaway: a temp data directory (SQLite, keys), a unique VIGILUS_REDIS_PREFIX on
REDIS_URL (default redis://127.0.0.1:6379/12) whose keys are deleted at the end, Celery's broker keys
under the same prefix. Target: p95 <= 50 ms.

    .venv/bin/python bench/approval_push.py [N] [--backlog]
"""

from __future__ import annotations

import asyncio
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import percentile, quiet_console_logging

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VENV_BIN = ROOT / ".venv" / "bin"

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
N = int(ARGS[0]) if ARGS else 100
BACKLOG = "--backlog" in sys.argv[1:]
WARMUP = 5
TARGET_P95_MS = 50.0
FRAME_TIMEOUT = 10.0  # seconds a frame may take before the run is called broken


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_environment() -> Path:
    data_dir = Path(tempfile.mkdtemp(prefix="vigilus-bench-push-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "vigilus.settings"
    os.environ["VIGILUS_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)  # SQLite in the data dir: never migrate a shared database
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
    os.environ["VIGILUS_REDIS_PREFIX"] = f"vigilus-bench-push-{os.getpid()}-{secrets.token_hex(4)}"
    return data_dir


def migrate(data_dir: Path) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"migrate failed:\n{result.stdout}\n{result.stderr}")


def setup_django() -> None:
    import django

    django.setup()
    # Audit records go to the configured logging; point console streams at /dev/null (as if piped to a
    # supervisor) so a terminal's speed is not measured.
    quiet_console_logging()
    # Celery's broker keys (queue lists, bindings) under this run's prefix too, so cleanup can find them.
    from django.conf import settings

    from vigilus.celery import app

    app.conf.broker_transport_options = {"global_keyprefix": f"{settings.REDIS_KEY_PREFIX}:celery:"}


SENDS: list[float] = []  # perf_counter when this process's channel layer began each group_send


def watch_group_send() -> None:
    """Note when the push leaves this process: the layer's group_send, wrapped on this process's instance
    only (publish_html looks the method up at each send). Nothing else changes."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    original = layer.group_send

    async def group_send(group: str, message: dict) -> None:
        SENDS.append(time.perf_counter())
        await original(group, message)

    layer.group_send = group_send


def create_people() -> tuple[Any, Any]:
    """An admin (an approver) and a strict Operator; returns (operator, session key of the admin)."""
    from django.test import Client

    from operators.models import Operator
    from providers.services import create_provider
    from vigilus.choices import Role
    from vigilus.services import create_user

    admin, _ = create_user("bench-admin", role=Role.ADMIN, password=secrets.token_urlsafe(16))
    provider = create_provider(actor=admin, name="local", kind="ollama", default_model="m")
    operator = Operator.objects.create(name="fixer", provider=provider, ceiling="exec", jit_mode="strict")
    client = Client()
    client.force_login(admin)
    return operator, client.cookies["sessionid"].value


def start_daphne(port: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "vigilus.asgi:application"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"daphne exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    stop_daphne(process)
    raise SystemExit(f"daphne did not listen on {port} within 30 s:\n{log_path.read_text()[-3000:]}")


def stop_daphne(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


class BrowserSocket:
    """An aiohttp websocket client on its own event loop thread; each text frame is queued with its arrival
    time (perf_counter, taken as soon as the frame is read)."""

    def __init__(self, url: str, origin: str, session_key: str) -> None:
        self.frames: queue.Queue[tuple[float, str]] = queue.Queue()
        self.closed = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-websocket", daemon=True)
        self.thread.start()
        self.stop: asyncio.Event | None = None
        connected: asyncio.Future = asyncio.run_coroutine_threadsafe(self._connect(url, origin, session_key), self.loop)
        self.reader = connected.result(15)

    async def _connect(self, url: str, origin: str, session_key: str) -> asyncio.Task:
        import aiohttp

        self.stop = asyncio.Event()
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(
            url, headers={"Origin": origin, "Cookie": f"sessionid={session_key}"}, autoping=True, max_msg_size=0
        )
        return asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        import aiohttp

        try:
            while True:
                message = await self.ws.receive()
                arrived = time.perf_counter()
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.frames.put((arrived, message.data))
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
        finally:
            self.closed.set()

    def drain(self) -> None:
        while True:
            try:
                self.frames.get_nowait()
            except queue.Empty:
                return

    def wait_for(self, needle: str, timeout: float) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.closed.is_set() and self.frames.empty()):
                why = "the socket closed" if self.closed.is_set() else f"{timeout:.0f} s passed"
                raise SystemExit(f"no frame naming {needle!r}: {why}")
            try:
                arrived, text = self.frames.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if needle in text:
                return arrived, text

    def close(self) -> None:
        async def close() -> None:
            await self.ws.close()
            await self.session.close()
            self.reader.cancel()

        try:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def measure(browser: BrowserSocket, operator: Any, index: int) -> tuple[float, float, float, int]:
    """One request: (total, until group_send, until request_access returned) in ms, and the frame's size."""
    from django.db import transaction

    from jit.choices import RequestStatus
    from jit.models import AccessRequest
    from jit.services import request_access

    browser.drain()
    SENDS.clear()
    target = f"/srv/bench/marker-{index}"
    started = time.perf_counter()
    with transaction.atomic():
        request = request_access(
            operator=operator,
            run_id=None,
            tool="shell__run_command",
            intent="write",
            target=target,
            arguments={"command": f"touch {target}"},
            reason="benchmark: approval push latency",
        )
    committed = time.perf_counter()
    arrived, text = browser.wait_for(f'id="request-{request.pk}"', FRAME_TIMEOUT)
    if not BACKLOG:
        AccessRequest.objects.filter(pk=request.pk).update(status=RequestStatus.EXPIRED)
    if len(SENDS) != 1:
        raise SystemExit(f"expected one group_send per request, saw {len(SENDS)}")
    ms = [(t - started) * 1000 for t in (arrived, SENDS[0], committed)]
    return ms[0], ms[1], ms[2], len(text.encode())


def clean_redis() -> int:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


def main() -> None:
    data_dir = setup_environment()
    daphne: subprocess.Popen | None = None
    browser: BrowserSocket | None = None
    try:
        migrate(data_dir)
        setup_django()
        watch_group_send()
        operator, session_key = create_people()
        port = free_port()
        daphne = start_daphne(port, data_dir / "daphne.log")
        origin = f"http://127.0.0.1:{port}"
        browser = BrowserSocket(f"ws://127.0.0.1:{port}/ws/", origin, session_key)

        totals, sends, returns, sizes = [], [], [], []
        for i in range(WARMUP + N):
            total, send, returned, size = measure(browser, operator, i)
            if i >= WARMUP:
                totals.append(total)
                sends.append(send)
                returns.append(returned)
                sizes.append(size)
        deliveries = [t - s for t, s in zip(totals, sends, strict=True)]

        from django.conf import settings

        mode = "backlog: every request stays pending" if BACKLOG else "one pending request per frame"
        print(
            f"{N} access requests (after {WARMUP} warm-up), daphne on 127.0.0.1:{port}, "
            f"channel layer {settings.REDIS_URL}, {mode}"
        )
        print(f"frame size: {min(sizes)}..{max(sizes)} bytes")
        print(f"{'':<38}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
        for label, values in (
            ("request -> frame at client", totals),
            ("  request -> group_send (in process)", sends),
            ("  group_send -> frame (delivery)", deliveries),
            ("(request_access + commit returned)", returns),
        ):
            print(f"{label:<38}{percentile(values, 50):>9.2f}{percentile(values, 95):>9.2f}{max(values):>9.2f}")
        p95 = percentile(totals, 95)
        verdict = "meets" if p95 <= TARGET_P95_MS else "misses"
        print(f"p95 {p95:.2f} ms: {verdict} the <= {TARGET_P95_MS:.0f} ms target")
    finally:
        if browser is not None:
            browser.close()
        if daphne is not None:
            stop_daphne(daphne)
        if "django.conf" in sys.modules:
            from django.conf import settings

            if settings.configured:
                clean_redis()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
