"""A browser's websocket to /ws/ through the full ASGI stack, driven from synchronous tests.

Sockets run on one event loop in a thread of its own, so the test body stays synchronous and can
open and commit transactions in between (live updates are sent only after commit). It is one loop
for the whole session, as in daphne: the Redis channel layer is a process-wide object whose
receive state belongs to the loop it runs on. Tests using sockets are transactional: the socket's
session lookup runs on another database connection and must see committed rows.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client

HOST = "testserver"
SAME_ORIGIN = f"http://{HOST}"
WAIT = 5.0  # seconds an expected frame may take
QUIET = 0.5  # seconds of silence that count as "nothing arrived"


class SocketLoop:
    """An asyncio loop in a background thread; `run` executes a coroutine there and returns its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="websocket-test-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Socket:
    """A browser's websocket to /ws/, driven from synchronous test code."""

    def __init__(self, loop: SocketLoop, headers: list[tuple[bytes, bytes]], path: str = "/ws/") -> None:
        self.loop = loop

        # Imported here, not at module level: importing it checks the keys against the database.
        from vigilus.asgi import application

        async def create() -> WebsocketCommunicator:
            return WebsocketCommunicator(application, path, headers=headers)

        self.communicator = loop.run(create())
        self.connected, self.close_code = loop.run(self.communicator.connect(timeout=WAIT))

    def receive_text(self) -> str:
        return self.loop.run(self.communicator.receive_from(timeout=WAIT))

    def receives_nothing(self) -> bool:
        return self.loop.run(self.communicator.receive_nothing(timeout=QUIET))

    def close(self) -> None:
        if not self.communicator.future.done():  # a receive that timed out has already stopped the app
            self.loop.run(self.communicator.disconnect())


@pytest.fixture(scope="session")
def socket_loop() -> Iterator[SocketLoop]:
    loop = SocketLoop()
    try:
        yield loop
    finally:
        try:
            loop.run(get_channel_layer().close_pools())
        finally:
            loop.close()


@pytest.fixture
def open_socket(socket_loop: SocketLoop) -> Iterator[Any]:
    """open_socket(user=None, origin=SAME_ORIGIN, host=HOST): a Socket; all are closed at the end."""
    loop = socket_loop
    sockets: list[Socket] = []

    def open_(
        user: User | None = None, origin: str | None = SAME_ORIGIN, host: str | None = HOST, path: str = "/ws/"
    ) -> Socket:
        headers = []
        if host is not None:
            headers.append((b"host", host.encode()))
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        if user is not None:
            client = Client()
            client.force_login(user)
            headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
        socket = Socket(loop, headers, path)
        sockets.append(socket)
        return socket

    yield open_
    for socket in sockets:
        socket.close()  # refused sockets too: their consumer still waits for the disconnect
    loop.run(get_channel_layer().wait_received())  # no receive bookkeeping left over for the next test
    # The session lookups ran in asgiref's sync thread, whose connection CONN_MAX_AGE keeps open;
    # left open it would block dropping the PostgreSQL test database.
    loop.run(sync_to_async(connections.close_all, thread_sensitive=True)())
