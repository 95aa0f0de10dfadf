"""The dashboard websocket through the full ASGI stack (origin check, session auth, consumer, Redis layer).

Sockets run on one event loop in a thread of its own, so the test body stays synchronous and can
open and commit transactions in between (publish_html sends only after commit). It is one loop
for the whole session, as in daphne: the Redis channel layer is a process-wide object whose
receive state belongs to the loop it runs on. Tests are transactional: the socket's session
lookup runs on another database connection and must see committed rows.
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
from django.db import connections, transaction
from django.test import Client

from vigilus.live import publish_html
from vigilus.redaction import MASK, remember_secret
from vigilus.services import deactivate_user

pytestmark = pytest.mark.django_db(transaction=True)

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

    def __init__(self, loop: SocketLoop, headers: list[tuple[bytes, bytes]]) -> None:
        self.loop = loop

        # Imported here, not at module level: importing it checks the keys against the database.
        from vigilus.asgi import application

        async def create() -> WebsocketCommunicator:
            return WebsocketCommunicator(application, "/ws/", headers=headers)

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

    def open_(user: User | None = None, origin: str | None = SAME_ORIGIN, host: str | None = HOST) -> Socket:
        headers = []
        if host is not None:
            headers.append((b"host", host.encode()))
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        if user is not None:
            client = Client()
            client.force_login(user)
            headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
        socket = Socket(loop, headers)
        sockets.append(socket)
        return socket

    yield open_
    for socket in sockets:
        socket.close()  # refused sockets too: their consumer still waits for the disconnect
    loop.run(get_channel_layer().wait_received())  # no receive bookkeeping left over for the next test
    # The session lookups ran in asgiref's sync thread, whose connection CONN_MAX_AGE keeps open;
    # left open it would block dropping the PostgreSQL test database.
    loop.run(sync_to_async(connections.close_all, thread_sensitive=True)())


def test_anonymous_socket_is_closed(open_socket: Any) -> None:
    socket = open_socket(user=None)
    assert not socket.connected


def test_logged_in_socket_from_this_site_is_accepted(open_socket: Any, viewer_user: User) -> None:
    assert open_socket(user=viewer_user).connected


def test_socket_from_a_foreign_origin_is_refused_even_when_logged_in(open_socket: Any, admin_user: User) -> None:
    assert not open_socket(user=admin_user, origin="http://evil.example").connected


def test_socket_from_another_port_of_the_same_host_is_refused(open_socket: Any, admin_user: User) -> None:
    assert not open_socket(user=admin_user, origin=f"http://{HOST}:8080").connected


def test_socket_without_origin_is_refused(open_socket: Any, admin_user: User) -> None:
    assert not open_socket(user=admin_user, origin=None).connected


def test_socket_of_a_deactivated_user_is_refused(open_socket: Any, viewer_user: User) -> None:
    deactivate_user(viewer_user)
    assert not open_socket(user=viewer_user).connected


def test_published_html_reaches_the_users_socket_after_commit_redacted(open_socket: Any, viewer_user: User) -> None:
    secret = "q7Zp-vault-9931-nas"
    remember_secret(secret)
    socket = open_socket(user=viewer_user)
    assert socket.connected

    with transaction.atomic():
        publish_html(f"user.{viewer_user.pk}", f'<div id="live-notices" hx-swap-oob="true">nas uses {secret} now</div>')
        assert socket.receives_nothing(), "the event was sent before the transaction committed"

    text = socket.receive_text()
    assert secret not in text
    assert f"nas uses {MASK} now" in text
    assert text.startswith('<div id="live-notices" hx-swap-oob="true">')


def test_html_published_in_a_rolled_back_transaction_is_never_sent(open_socket: Any, viewer_user: User) -> None:
    socket = open_socket(user=viewer_user)
    with pytest.raises(RuntimeError), transaction.atomic():
        publish_html(f"user.{viewer_user.pk}", "<div>never happened</div>")
        raise RuntimeError("roll back")
    assert socket.receives_nothing()


def test_published_html_does_not_reach_another_users_socket(
    open_socket: Any, viewer_user: User, admin_user: User
) -> None:
    viewers_socket = open_socket(user=viewer_user)
    admins_socket = open_socket(user=admin_user)
    assert viewers_socket.connected and admins_socket.connected

    with transaction.atomic():
        publish_html(f"user.{admin_user.pk}", "<div>for alice only</div>")

    assert admins_socket.receive_text() == "<div>for alice only</div>"
    assert viewers_socket.receives_nothing()


def test_messages_sent_by_the_browser_are_ignored(open_socket: Any, viewer_user: User) -> None:
    socket = open_socket(user=viewer_user)
    socket.loop.run(socket.communicator.send_json_to({"type": "live.html", "html": "<div>spoof</div>"}))
    assert socket.receives_nothing()
    with transaction.atomic():
        publish_html(f"user.{viewer_user.pk}", "<div>still listening</div>")
    assert socket.receive_text() == "<div>still listening</div>"
