"""The embedded Redis `make run` starts keeps its queue across a crash: a SIGKILLed server comes back with what was
written more than a second before."""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.conftest import wait_for
from vigilus.management.commands.run import embedded_redis_command

pytestmark = [pytest.mark.integration, pytest.mark.engine_independent]


def start(data_dir: Path, socket_path: Path) -> subprocess.Popen:
    argv = shlex.split(embedded_redis_command(data_dir, socket_path).removeprefix("exec "))
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    wait_for(socket_path.exists, timeout=10, interval=0.05, what="the embedded Redis to listen")
    return proc


def test_the_embedded_redis_keeps_its_queue_across_a_crash(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    proc = start(tmp_path, socket_path)
    try:
        client = redis.Redis(unix_socket_path=str(socket_path))
        client.rpush("default", "a queued task message")
        time.sleep(1.5)  # appendfsync everysec: on disk within a second
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        client.close()
        socket_path.unlink(missing_ok=True)
        proc = start(tmp_path, socket_path)
        client = redis.Redis(unix_socket_path=str(socket_path))
        assert client.lrange("default", 0, -1) == [b"a queued task message"]
        client.close()
    finally:
        proc.kill()
        proc.wait(10)
