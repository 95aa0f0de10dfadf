"""`manage.py users`: scripted setup of people and roles; `--as` names who acts."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from vigilus.choices import Role
from vigilus.services import ensure_first_admin, resolve_actor, role_of

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("users", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("role", Role.values)
def test_add_puts_the_user_in_the_role_group(role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEW_PW", "a-long-password-42")
    run("add", "sam", "--role", role, "--password-env", "NEW_PW")
    user = User.objects.get(username="sam")
    assert list(user.groups.values_list("name", flat=True)) == [f"{role}s"]
    assert authenticate(username="sam", password="a-long-password-42") == user
    assert user.is_staff == (role == "admin")


def test_add_without_password_prints_a_generated_one_once() -> None:
    out = run("add", "kim", "--role", "viewer")
    password = out.split("Password (shown once): ")[1].strip()
    assert authenticate(username="kim", password=password) is not None
    assert "Password" not in run("list")


def test_password_env_that_is_unset_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(CommandError, match="NOPE is not set"):
        run("add", "kim", "--role", "viewer", "--password-env", "NOPE")
    assert not User.objects.filter(username="kim").exists()


def test_duplicate_username_is_refused_naming_the_field() -> None:
    run("add", "kim", "--role", "viewer")
    with pytest.raises(CommandError, match="username: A user named 'KIM' already exists"):
        run("add", "KIM", "--role", "admin")


def test_unknown_role_is_refused() -> None:
    with pytest.raises(CommandError, match="invalid choice: 'root'"):
        run("add", "kim", "--role", "root")


def test_list_json_set_role_and_deactivate() -> None:
    run("add", "kim", "--role", "viewer")
    run("set-role", "kim", "--role", "approver")
    run("deactivate", "kim")
    (row,) = [r for r in json.loads(run("list", "--json")) if r["username"] == "kim"]
    assert row == {"username": "kim", "role": "approver", "active": False, "last_login": None, "sso_subject": None}


def test_first_admin_uses_the_configured_password_and_is_created_once() -> None:
    assert ensure_first_admin("first-Admin-pw-1") is None
    admin = User.objects.get(username="admin")
    assert role_of(admin) == Role.ADMIN
    assert authenticate(username="admin", password="first-Admin-pw-1") == admin
    assert ensure_first_admin("other") is None
    assert User.objects.filter(username="admin").count() == 1


def test_first_admin_without_password_gets_a_generated_one() -> None:
    generated = ensure_first_admin(None)
    assert generated and authenticate(username="admin", password=generated) is not None
    assert ensure_first_admin(None) is None


def test_actions_default_to_the_first_admin_and_as_names_another() -> None:
    run("add", "root-admin", "--role", "admin")
    run("add", "bert", "--role", "approver")
    assert resolve_actor(None).username == "root-admin"
    assert resolve_actor("bert").username == "bert"
    with pytest.raises(ValidationError, match="No active user named 'ghost'"):
        resolve_actor("ghost")


def test_as_unknown_user_is_a_command_error() -> None:
    from vigilus.management.base import AreaCommand

    class Probe(AreaCommand):
        def add_subcommands(self) -> None:
            self.subcommand("who", "print the actor")

        def handle_who(self, **options: object) -> None:
            self.stdout.write(self.actor(options).username)

    run("add", "boss", "--role", "admin")
    out = StringIO()
    call_command(Probe(), "who", stdout=out)
    assert out.getvalue().strip() == "boss"
    with pytest.raises(CommandError, match="as: No active user named 'ghost'"):
        call_command(Probe(), "who", "--as", "ghost")


def test_set_password_from_the_environment_lets_the_user_log_in_with_it_and_is_audited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from audit.models import AuditEntry

    run("add", "bert", "--role", "approver")
    monkeypatch.setenv("NEW_PW", "a-new-long-passphrase-42")
    out = run("set-password", "bert", "--password-env", "NEW_PW")
    assert "new password" in out and "a-new-long-passphrase-42" not in out
    assert authenticate(username="bert", password="a-new-long-passphrase-42") is not None
    entry = AuditEntry.objects.filter(event="user.password_set").get()
    assert entry.target == "bert" and "a-new-long-passphrase-42" not in json.dumps(entry.details)


def test_set_password_without_env_prints_a_generated_one_once() -> None:
    run("add", "bert", "--role", "viewer")
    out = run("set-password", "bert")
    (password,) = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("Password (shown once)")]
    assert authenticate(username="bert", password=password) is not None


def test_set_password_refuses_a_weak_password_an_unset_variable_and_an_unknown_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run("add", "bert", "--role", "viewer")
    monkeypatch.setenv("WEAK", "password")
    with pytest.raises(CommandError, match="password: This password is too common"):
        run("set-password", "bert", "--password-env", "WEAK")
    with pytest.raises(CommandError, match="UNSET_VAR is not set"):
        run("set-password", "bert", "--password-env", "UNSET_VAR")
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("set-password", "nobody")


def test_adding_a_user_changing_its_role_and_deactivating_it_are_on_the_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fresh install's first records: who was let in, with which role, and who was shut out (never a password)."""
    from audit.models import AuditEntry
    from audit.services import verify_log

    monkeypatch.setenv("PW", "a-long-passphrase-for-bert-7")
    run("add", "boss", "--role", "admin")
    run("add", "bert", "--role", "viewer", "--password-env", "PW", "--as", "boss")
    run("set-role", "bert", "--role", "approver")
    run("deactivate", "bert", "--as", "boss")
    entries = [(e.event, e.actor, e.target, e.details.get("role")) for e in AuditEntry.objects.order_by("sequence")]
    assert entries == [
        ("user.created", "system", "boss", "admin"),
        ("user.created", "boss", "bert", "viewer"),
        ("user.role_set", "system", "bert", "approver"),
        ("user.deactivated", "boss", "bert", None),
    ]
    assert "a-long-passphrase-for-bert-7" not in json.dumps([e.details for e in AuditEntry.objects.all()])
    assert verify_log().ok
