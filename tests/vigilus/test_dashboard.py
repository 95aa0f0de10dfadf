"""The dashboard shell as a person uses it: log in and out, home, settings, people and roles, health."""

from __future__ import annotations

import re
import socket

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD, make_user
from vigilus.choices import Role
from vigilus.services import site_settings


def log_in(username: str, password: str, address: str = "10.0.0.1") -> tuple[Client, object]:
    client = Client(REMOTE_ADDR=address)
    response = client.post(reverse("login"), {"username": username, "password": password})
    return client, response


def is_logged_in(client: Client) -> bool:
    return client.get(reverse("home")).status_code == 200


def messages_of(response: object) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- Logging in and out ------------------------------------------------------------------------


def test_login_page_renders_a_password_field(db: None) -> None:
    response = Client().get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<input[^>]*type="password"[^>]*name="password"', html)
    assert 'name="username"' in html


def test_correct_login_lands_on_home(admin_user: User) -> None:
    client, response = log_in("alice", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    home = client.get(response["Location"])
    assert home.status_code == 200
    assert "alice" in home.content.decode()


def test_wrong_password_shows_an_error_and_does_not_log_in(admin_user: User) -> None:
    client, response = log_in("alice", "not-the-password")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert not is_logged_in(client)


def test_too_many_failed_logins_lock_the_username_even_with_the_right_password(
    admin_user: User, viewer_user: User, settings: object
) -> None:
    for attempt in range(settings.LOGIN_FAILURE_LIMIT):
        _, response = log_in("alice", f"guess-{attempt}", address="10.0.0.1")
        assert response.status_code == 200, f"attempt {attempt + 1} was refused before the limit"

    # The right password, even from another address, is refused for this username now.
    client, response = log_in("alice", PASSWORD, address="10.0.0.2")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert not is_logged_in(client)

    # Someone else, from somewhere else, logs in as usual.
    client, response = log_in("vera", PASSWORD, address="10.0.0.3")
    assert response.status_code == 302
    assert is_logged_in(client)


def test_failures_below_the_limit_do_not_lock_anyone_out(admin_user: User, settings: object) -> None:
    for attempt in range(settings.LOGIN_FAILURE_LIMIT - 1):
        log_in("alice", f"guess-{attempt}")
    client, response = log_in("alice", PASSWORD)
    assert response.status_code == 302
    assert is_logged_in(client)


def test_logout_is_post_only(admin_client: Client) -> None:
    assert admin_client.get(reverse("logout")).status_code == 405
    assert is_logged_in(admin_client)

    response = admin_client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert not is_logged_in(admin_client)


# --- Home --------------------------------------------------------------------------------------


def test_home_shows_navigation_with_settings(viewer_client: Client) -> None:
    response = viewer_client.get(reverse("home"))
    assert response.status_code == 200
    assert re.search(
        rf'<nav>.*<a href="{reverse("settings")}"[^>]*>Settings</a>.*</nav>', response.content.decode(), re.S
    )


def test_home_loads_the_health_panel(viewer_client: Client) -> None:
    assert f'hx-get="{reverse("health-panel")}"' in viewer_client.get(reverse("home")).content.decode()


# --- Settings ----------------------------------------------------------------------------------


def test_viewer_sees_settings_but_cannot_change_them(viewer_client: Client) -> None:
    response = viewer_client.get(reverse("settings"))
    assert response.status_code == 200
    assert "Only admins may change settings." in response.content.decode()

    response = viewer_client.post(reverse("settings"), settings_form(instance_name="Hijacked"))
    assert response.status_code == 403
    assert site_settings().instance_name == "Vigilus"


def settings_form(**changes: object) -> dict:
    """The Settings form as the page submits it: every field with its current value, then `changes`."""
    from vigilus.forms import SiteSettingsForm

    form = SiteSettingsForm(instance=site_settings())
    data = {name: form[name].value() for name in form.fields if form[name].value() not in (None, False)}
    data.update(changes)
    return data


def test_admin_changes_the_instance_name(admin_client: Client) -> None:
    response = admin_client.post(reverse("settings"), settings_form(instance_name="Homelab North"))
    assert response.status_code == 302
    assert response["Location"] == reverse("settings")
    assert site_settings().instance_name == "Homelab North"
    page = admin_client.get(reverse("settings"))
    assert "Settings saved." in page.content.decode()
    assert 'value="Homelab North"' in page.content.decode()


def test_instance_name_is_shown_in_the_page_title(admin_client: Client) -> None:
    """The field's own help text promises it: "Shown in the page title and in notifications"."""
    admin_client.post(reverse("settings"), settings_form(instance_name="Homelab North"))
    title = re.search(r"<title>(.*?)</title>", admin_client.get(reverse("home")).content.decode(), re.S).group(1)
    assert "Homelab North" in title


def test_an_empty_instance_name_is_refused(admin_client: Client) -> None:
    response = admin_client.post(reverse("settings"), settings_form(instance_name=""))
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert site_settings().instance_name == "Vigilus"


# --- People ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "group"), [("admin", "admins"), ("approver", "approvers"), ("viewer", "viewers")])
def test_admin_creates_a_user_in_the_group_of_their_role(admin_client: Client, role: str, group: str) -> None:
    response = admin_client.post(
        reverse("user-create"), {"username": "newbie", "role": role, "password": "plum-orchard-tractor-58"}
    )
    assert response.status_code == 302
    assert "Created newbie." in messages_of(response)
    user = User.objects.get(username="newbie")
    assert list(user.groups.values_list("name", flat=True)) == [group]
    assert user.is_staff is (role == "admin")
    client, login = log_in("newbie", "plum-orchard-tractor-58")
    assert login.status_code == 302
    assert is_logged_in(client)


def test_a_user_created_without_password_gets_one_shown_once_that_works(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("user-create"), {"username": "newbie", "role": "viewer", "password": ""}, follow=True
    )
    generated = re.search(r"Password \(shown once\): ([^<\s]+)", response.content.decode()).group(1)
    # Shown once: the next visit to the settings page does not repeat it.
    assert generated not in admin_client.get(reverse("settings")).content.decode()
    client, login = log_in("newbie", generated)
    assert login.status_code == 302
    assert is_logged_in(client)


def test_creating_a_user_with_a_taken_name_shows_an_error(admin_client: Client, viewer_user: User) -> None:
    response = admin_client.post(reverse("user-create"), {"username": "VERA", "role": "admin", "password": ""})
    assert any("already exists" in m for m in messages_of(response))
    assert User.objects.filter(username__iexact="vera").count() == 1
    assert not User.objects.get(username="vera").is_staff


def test_viewer_cannot_create_users(viewer_client: Client) -> None:
    response = viewer_client.post(
        reverse("user-create"), {"username": "intruder", "role": "admin", "password": "plum-orchard-tractor-58"}
    )
    assert response.status_code == 403
    assert not User.objects.filter(username="intruder").exists()


def test_admin_sets_a_users_role(admin_client: Client, viewer_user: User) -> None:
    response = admin_client.post(reverse("user-role", args=[viewer_user.pk]), {"role": "approver"})
    assert response.status_code == 302
    assert list(viewer_user.groups.values_list("name", flat=True)) == ["approvers"]


def test_viewer_cannot_set_roles(viewer_client: Client, viewer_user: User) -> None:
    response = viewer_client.post(reverse("user-role", args=[viewer_user.pk]), {"role": "admin"})
    assert response.status_code == 403
    assert list(viewer_user.groups.values_list("name", flat=True)) == ["viewers"]
    viewer_user.refresh_from_db()
    assert not viewer_user.is_staff


def test_admin_deactivates_a_user_who_is_then_logged_out(admin_client: Client, viewer_client: Client) -> None:
    vera = User.objects.get(username="vera")
    response = admin_client.post(reverse("user-deactivate", args=[vera.pk]))
    assert response.status_code == 302
    assert "vera can no longer log in." in messages_of(response)
    vera.refresh_from_db()
    assert not vera.is_active
    assert not is_logged_in(viewer_client)
    _, login = log_in("vera", PASSWORD)
    assert login.status_code == 200


def test_admin_cannot_deactivate_themselves(admin_client: Client, admin_user: User) -> None:
    response = admin_client.post(reverse("user-deactivate", args=[admin_user.pk]))
    assert "You cannot deactivate yourself." in messages_of(response)
    admin_user.refresh_from_db()
    assert admin_user.is_active
    assert is_logged_in(admin_client)


def test_viewer_cannot_deactivate_anyone(viewer_client: Client, admin_user: User) -> None:
    response = viewer_client.post(reverse("user-deactivate", args=[admin_user.pk]))
    assert response.status_code == 403
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_settings_page_lists_people_with_their_roles(admin_client: Client, viewer_user: User) -> None:
    make_user("bert", Role.APPROVER)
    html = admin_client.get(reverse("settings")).content.decode()
    assert re.search(r"<td>bert</td>\s*<td>approver</td>", html)
    assert re.search(r"<td>vera</td>\s*<td>viewer</td>", html)


# --- Health ------------------------------------------------------------------------------------


def test_health_panel_shows_database_and_redis_states(viewer_client: Client) -> None:
    response = viewer_client.get(reverse("health-panel"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<dt>Database</dt><dd class="ok">ok</dd>' in html
    assert '<dt>Redis</dt><dd class="ok">ok</dd>' in html
    assert "<dt>Workers</dt>" in html


def test_healthz_reports_database_redis_and_workers(db: None) -> None:
    response = Client().get(reverse("healthz"))
    body = response.json()
    assert {"status", "database", "redis", "workers"} <= body.keys()
    assert body["database"] == "ok"
    assert body["redis"] == "ok"
    assert isinstance(body["workers"], int)
    assert (response.status_code == 200) == (body["status"] == "ok")
    assert response.status_code in (200, 503)
    if response.status_code == 503:
        assert body["down"], "a 503 must say what is down"


def test_healthz_is_503_and_names_redis_when_redis_is_unreachable(db: None, settings: object) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = Client().get(reverse("healthz"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["redis"] == "down"
    assert "redis" in body["down"]
    assert body["database"] == "ok"


def test_health_panel_warns_when_redis_is_unreachable(viewer_client: Client, settings: object) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    html = viewer_client.get(reverse("health-panel")).content.decode()
    assert '<dt>Redis</dt><dd class="down">down</dd>' in html
    assert re.search(r"Down: [^<]*redis", html)


def test_settings_page_holds_the_jit_section_with_write_only_notification_urls(admin_client: Client) -> None:
    from vigilus.services import site_settings

    data = {
        "instance_name": "Lab",
        "jit_mode": "lenient",
        "grant_default_ttl_minutes": 10,
        "grant_max_ttl_minutes": 30,
        "request_expiry_minutes": 20,
        "hold_untrusted_runs_strict": "on",
        "notification_urls": "ntfys://ntfy.sh/secret-topic-8c7b6a",
        "orchestrator_model": "",
    }
    assert admin_client.post(reverse("settings"), data).status_code == 302
    row = site_settings()
    assert (row.jit_mode, row.grant_max_ttl_minutes, row.request_expiry_minutes) == ("lenient", 30, 20)
    page = admin_client.get(reverse("settings")).content.decode()
    assert "secret-topic-8c7b6a" not in page and "Global JIT mode" in page
    admin_client.post(reverse("settings"), {**data, "notification_urls": ""})
    assert site_settings().notification_urls == "ntfys://ntfy.sh/secret-topic-8c7b6a", "empty keeps the stored URLs"
    bad = admin_client.post(reverse("settings"), {**data, "grant_default_ttl_minutes": 90}).content.decode()
    assert "cannot be longer" in bad


def test_navigation_leaves_out_admin_only_pages_for_everyone_else(viewer_client: Client, admin_client: Client) -> None:
    viewer_nav = re.search(r"<nav>.*</nav>", viewer_client.get(reverse("home")).content.decode(), re.S).group(0)
    admin_nav = re.search(r"<nav>.*</nav>", admin_client.get(reverse("home")).content.decode(), re.S).group(0)
    for page in ("schedules", "webhooks"):
        assert f'href="{reverse(page)}"' in admin_nav and f'href="{reverse(page)}"' not in viewer_nav
        assert viewer_client.get(reverse(page)).status_code == 403
    for page in ("tasks", "tools", "audit", "settings"):
        assert f'href="{reverse(page)}"' in viewer_nav
        assert viewer_client.get(reverse(page)).status_code == 200
