"""The dashboard websocket through the full ASGI stack (origin check, session auth, consumer, Redis layer).

Sockets run on one event loop in a thread of its own, so the test body stays synchronous and can
open and commit transactions in between (publish_html sends only after commit). It is one loop
for the whole session, as in daphne: the Redis channel layer is a process-wide object whose
receive state belongs to the loop it runs on. Tests are transactional: the socket's session
lookup runs on another database connection and must see committed rows.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from vigilus.live import publish_html
from vigilus.redaction import MASK, remember_secret
from vigilus.services import deactivate_user

pytestmark = pytest.mark.django_db(transaction=True)

from tests.websockets import HOST  # noqa: E402


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


def test_an_idle_socket_stays_open_past_the_layers_blocking_read(
    open_socket: Any, viewer_user: User, caplog: pytest.LogCaptureFixture
) -> None:
    """The layer waits for a message with a blocking read of 5 s; a Redis socket timeout of the same length
    dropped the connection with a TimeoutError about every 6 s. Idle for two of those reads, it still delivers."""
    import time

    socket = open_socket(user=viewer_user)
    time.sleep(12)
    with transaction.atomic():
        publish_html(f"user.{viewer_user.pk}", "<div>after a quiet while</div>")
    assert socket.receive_text() == "<div>after a quiet while</div>"
    assert not [r for r in caplog.records if r.exc_info or "Timeout" in r.getMessage()]


def test_the_person_who_started_a_run_hears_it_finished_and_nobody_else(
    open_socket: Any, viewer_user: User, admin_user: User
) -> None:
    from operators.choices import RunStatus
    from operators.models import Run
    from operators.notices import tell_starter

    viewers_socket = open_socket(user=viewer_user)
    admins_socket = open_socket(user=admin_user)
    mine = Run.objects.create(task="check the disks", status=RunStatus.COMPLETED, started_by=viewer_user)
    scheduled = Run.objects.create(task="nightly", status=RunStatus.FAILED)  # nobody started it: nobody is told

    with transaction.atomic():
        tell_starter(scheduled)
        tell_starter(mine)

    notice = viewers_socket.receive_text()
    assert f'href="/runs/{mine.pk}/"' in notice and f"Run #{mine.pk} completed" in notice
    assert 'id="live-notices"' in notice and 'role="status"' in notice
    assert viewers_socket.receives_nothing() and admins_socket.receives_nothing()
