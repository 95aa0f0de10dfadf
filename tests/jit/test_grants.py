"""Just-in-time grants through the gateway: strict parks, lenient auto-approves, ceilings hold, tokens are checked."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from audit.models import AuditEntry
from jit import services, tokens
from jit.models import AccessRequest, Grant
from tests.conftest import make_user
from tools import gateway
from vigilus.choices import Role
from vigilus.services import update_site_settings

pytestmark = pytest.mark.django_db


def touch(path: Path) -> dict:
    return {"command": f"touch {path}"}


def append(path: Path) -> dict:
    """A write call whose every run leaves one more line in `path`: the canary counts the runs."""
    return {"command": f"echo ran >> {path}"}


def runs(canary: Path) -> int:
    return canary.read_text().count("ran") if canary.exists() else 0


def refusals(grant: Grant) -> list[AuditEntry]:
    """The gateway's "denied" decisions recorded for calls presented under `grant`, oldest first."""
    return list(
        AuditEntry.objects.filter(event="tool_call.decision", decision="denied", grant_id=grant.pk).order_by("sequence")
    )


def dispatches(arguments: dict) -> list[AuditEntry]:
    """The outcome entries of calls with exactly these arguments that reached the tool (it ran)."""
    ran = AuditEntry.objects.filter(event="tool_call.outcome", outcome__in=("succeeded", "failed"))
    return [e for e in ran if e.arguments == arguments]


def resign(grant: Grant, **claims: object) -> str:
    """The grant's token with some claims changed, signed with the instance's own key (a genuine signature)."""
    current = jwt.decode(grant.token, options={"verify_signature": False})
    return jwt.encode({**current, **claims}, tokens.signing_key(), algorithm=tokens.ALGORITHM)


def test_read_runs_without_any_request(make_operator) -> None:
    operator = make_operator(ceiling="read_only")
    result = gateway.execute("shell__run_command", {"command": "uptime"}, operator=operator)
    assert result.ok and result.decision == "allowed"
    assert not AccessRequest.objects.exists()


def test_a_call_above_the_ceiling_is_denied_outright(make_operator, tmp_path: Path) -> None:
    operator = make_operator(ceiling="read_only")
    result = gateway.execute("shell__run_command", touch(tmp_path / "x"), operator=operator)
    assert result.decision == "denied" and "above fixer's ceiling (Read only)" in result.content
    assert not AccessRequest.objects.exists() and not (tmp_path / "x").exists()
    elevated = make_operator(name="writer", ceiling="write")
    assert gateway.execute("shell__run_command", {"command": "sudo id"}, operator=elevated).decision == "denied"


def test_strict_parks_the_call_until_approved_then_runs_it_exactly_once(make_operator, admin_user, tmp_path) -> None:
    operator = make_operator()
    canary = tmp_path / "strict"
    result = gateway.execute("shell__run_command", touch(canary), operator=operator, reason="create the marker")
    assert result.decision == "pending" and not result.ok and not canary.exists()
    (request,) = AccessRequest.objects.all()
    assert (request.status, request.intent, request.target, request.reason) == (
        "pending",
        "write",
        "shell",
        "create the marker",
    )
    assert request.arguments == touch(canary) and request.operator_name == "fixer"

    grant = services.approve(request.pk, actor=admin_user)
    assert grant.max_uses == 1 and grant.scope == "call"
    result = gateway.execute("shell__run_command", touch(canary), operator=operator)
    assert result.ok and result.decision == "approved" and canary.exists()

    canary.unlink()
    again = gateway.execute("shell__run_command", touch(canary), operator=operator)
    assert again.decision == "pending" and not canary.exists(), "a single-call grant runs once"


def test_a_call_grant_covers_only_the_exact_arguments(make_operator, admin_user, tmp_path) -> None:
    operator = make_operator()
    gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=operator)
    services.approve(AccessRequest.objects.get().pk, actor=admin_user)
    other = gateway.execute("shell__run_command", touch(tmp_path / "b"), operator=operator)
    assert other.decision == "pending" and not (tmp_path / "b").exists()


def test_a_tool_grant_covers_the_tool_on_its_target_for_its_minutes(make_operator, admin_user, tmp_path) -> None:
    operator = make_operator()
    gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=operator)
    grant = services.approve(AccessRequest.objects.get().pk, actor=admin_user, scope="tool", ttl_minutes=5)
    assert grant.max_uses is None and 299 <= (grant.expires_at - grant.issued_at).total_seconds() <= 301
    for name in ("a", "b", "c"):
        assert gateway.execute("shell__run_command", touch(tmp_path / name), operator=operator).ok
    assert gateway.execute("shell__run_command", {"command": "sudo id"}, operator=operator).decision != "approved", (
        "a write grant does not cover elevate"
    )


def test_grant_duration_is_capped(make_operator, admin_user, tmp_path) -> None:
    gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=make_operator())
    with pytest.raises(ValidationError, match="A grant lasts 1 to 60 minutes"):
        services.approve(AccessRequest.objects.get().pk, actor=admin_user, scope="tool", ttl_minutes=90)


def test_lenient_auto_approves_and_inherit_follows_the_global_mode(make_operator, admin_user, tmp_path) -> None:
    lenient = make_operator(name="auto", jit_mode="lenient")
    result = gateway.execute("shell__run_command", touch(tmp_path / "l"), operator=lenient)
    assert result.ok and result.decision == "auto_approved" and (tmp_path / "l").exists()
    assert AccessRequest.objects.get().status == "auto_approved" and Grant.objects.get().auto_approved

    inheriting = make_operator(name="inherits", jit_mode="inherit")
    assert gateway.execute("shell__run_command", touch(tmp_path / "s"), operator=inheriting).decision == "pending"
    services.set_global_mode("lenient", actor=admin_user)
    assert gateway.execute("shell__run_command", touch(tmp_path / "i"), operator=inheriting).decision == "auto_approved"
    assert (tmp_path / "i").exists()


def test_the_decision_before_a_call_that_can_change_something_is_durable(
    make_operator, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """A power cut right after a write/exec/elevate call ran must not lose the entry saying it was allowed; a read,
    or a call that does not run, needs no synced commit."""
    asked: list[tuple[str, bool]] = []
    real_record = gateway.record

    def record(event: str, **details: object) -> object:
        if event == "tool_call.decision":
            asked.append((str(details["decision"]), bool(details.get("durable"))))
        return real_record(event, **details)

    monkeypatch.setattr(gateway, "record", record)
    lenient = make_operator(name="auto", jit_mode="lenient")
    gateway.execute("shell__run_command", {"command": "uptime"}, operator=lenient)
    gateway.execute("shell__run_command", touch(tmp_path / "l"), operator=lenient)
    gateway.execute("shell__run_command", touch(tmp_path / "s"), operator=make_operator(name="asks"))
    gateway.execute("shell__run_command", touch(tmp_path / "r"), operator=make_operator(name="ro", ceiling="read_only"))
    assert asked == [("allowed", False), ("auto_approved", True), ("pending", False), ("denied", False)]
    assert (tmp_path / "l").exists() and not (tmp_path / "s").exists() and not (tmp_path / "r").exists()


def test_deny_needs_a_reason_and_expiry_counts_as_denied(make_operator, admin_user, tmp_path) -> None:
    operator = make_operator()
    gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=operator)
    gateway.execute("shell__run_command", touch(tmp_path / "b"), operator=operator)
    first, second = AccessRequest.objects.order_by("pk")
    with pytest.raises(ValidationError, match="Say why"):
        services.deny(first.pk, actor=admin_user, reason=" ")
    services.deny(first.pk, actor=admin_user, reason="not today")
    assert AccessRequest.objects.get(pk=first.pk).decision_reason == "not today"
    AccessRequest.objects.filter(pk=second.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.expire_requests() == 1
    assert AccessRequest.objects.get(pk=second.pk).status == "expired"
    with pytest.raises(ValidationError, match="was already expired"):
        services.approve(second.pk, actor=admin_user)


def test_who_may_decide(make_operator, admin_user, tmp_path) -> None:
    gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=make_operator())
    request = AccessRequest.objects.get()
    viewer = make_user("vic", Role.VIEWER)
    with pytest.raises(PermissionDenied, match="may not decide"):
        services.approve(request.pk, actor=viewer)
    assert services.approve(request.pk, actor=admin_user)


def test_revoked_grant_is_refused_before_dispatch(make_operator, admin_user, tmp_path) -> None:
    operator = make_operator()
    gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=operator)
    grant = services.approve(AccessRequest.objects.get().pk, actor=admin_user, scope="tool", ttl_minutes=10)
    services.revoke(grant.pk, actor=admin_user)
    result = gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=operator)
    assert result.decision == "pending" and not (tmp_path / "a").exists()


# --- tokens -------------------------------------------------------------------------------------


@pytest.fixture
def approved(make_operator, admin_user, tmp_path):
    operator = make_operator()
    arguments = touch(tmp_path / "t")
    gateway.execute("shell__run_command", arguments, operator=operator)
    grant = services.approve(AccessRequest.objects.get().pk, actor=admin_user)
    call = tokens.CallScope(
        operator.pk, None, "shell__run_command", "write", "shell", services.arguments_digest(arguments)
    )
    return grant, call, arguments, operator


def test_a_forged_token_is_refused(approved) -> None:
    grant, _call, arguments, operator = approved
    claims = jwt.decode(grant.token, options={"verify_signature": False})
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    Grant.objects.filter(pk=grant.pk).update(token=forged)
    result = gateway.execute("shell__run_command", arguments, operator=operator)
    assert result.decision == "denied" and "signature is not valid" in result.content
    assert not Path(arguments["command"].split()[1]).exists()
    (refusal,) = refusals(grant)
    assert refusal.details["policy_reason"] == "the grant's signature is not valid (forged or altered)"
    assert (refusal.tool, refusal.actor, refusal.arguments) == ("shell__run_command", "fixer", arguments)
    assert dispatches(arguments) == [], "nothing ran, so no outcome of a run was recorded"


def test_an_expired_token_is_refused(approved) -> None:
    _grant, call, *_ = approved
    past = timezone.now() - timedelta(minutes=5)
    expired = tokens.issue(
        token_id="x",
        scope="call",
        operator_id=call.operator_id,
        run_id=None,
        tool=call.tool,
        intent="write",
        target="shell",
        arguments_digest=call.arguments_digest,
        issued_at=past - timedelta(minutes=5),
        expires_at=past,
    )
    with pytest.raises(tokens.TokenRefused, match="expired"):
        tokens.verify(expired, call)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"tool": "filesystem__delete"}, "tool"),
        ({"target": "nas"}, "target"),
        ({"operator_id": 999}, "operator"),
        ({"arguments_digest": "0" * 64}, "arguments"),
        ({"intent": "elevate"}, "intent"),
    ],
)
def test_an_out_of_scope_token_is_refused(approved, change: dict, what: str) -> None:
    grant, call, *_ = approved
    with pytest.raises(tokens.TokenRefused, match=f"{what} differ"):
        tokens.verify(grant.token, tokens.CallScope(**{**call.__dict__, **change}))


def test_a_replayed_single_use_grant_is_refused(approved) -> None:
    grant, call, *_ = approved
    services.consume(grant, call)
    with pytest.raises(tokens.TokenRefused, match="already used"):
        services.consume(grant, call)


@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_of_a_single_use_grant_execute_exactly_once(approved) -> None:
    grant, call, *_ = approved
    outcomes: list[str] = []

    def replay() -> None:
        try:
            services.consume(Grant.objects.get(pk=grant.pk), call)
            outcomes.append("ran")
        except tokens.TokenRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=replay) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ran"] + ["refused"] * 7
    assert Grant.objects.get(pk=grant.pk).uses == 1


# --- refusals at the gateway: nothing runs, and the refusal is in the audit log ----------------------


@pytest.fixture
def approved_append(make_operator, admin_user, tmp_path):
    """A strict Operator whose appending call was approved once (a single-use grant), not yet run."""
    operator = make_operator()
    canary = tmp_path / "canary"
    arguments = append(canary)
    assert gateway.execute("shell__run_command", arguments, operator=operator).decision == "pending"
    grant = services.approve(AccessRequest.objects.get().pk, actor=admin_user)
    return grant, arguments, operator, canary


def test_an_expired_token_on_a_live_looking_grant_is_refused_at_the_gateway_and_audited(approved_append) -> None:
    grant, arguments, operator, canary = approved_append
    past = timezone.now() - timedelta(minutes=5)
    expired = resign(grant, iat=int((past - timedelta(minutes=5)).timestamp()), exp=int(past.timestamp()))
    Grant.objects.filter(pk=grant.pk).update(token=expired)
    assert Grant.objects.live().filter(pk=grant.pk).exists(), "the row itself still looks live"

    result = gateway.execute("shell__run_command", arguments, operator=operator)
    assert (result.ok, result.decision, result.content) == (False, "denied", "denied: the grant has expired")
    assert runs(canary) == 0 and dispatches(arguments) == []
    (refusal,) = refusals(grant)
    assert refusal.details["policy_reason"] == "the grant has expired" and refusal.arguments == arguments
    assert Grant.objects.get(pk=grant.pk).uses == 0


@pytest.mark.parametrize(
    ("claims", "what"),
    [
        ({"tool": "filesystem__delete"}, "tool"),
        ({"target": "nas"}, "target"),
        ({"op": 999}, "operator"),
        ({"args": "0" * 64}, "arguments"),
        ({"intent": "read"}, "intent"),
        ({"run": 999}, "run"),
    ],
)
def test_a_token_signed_for_another_call_is_refused_at_the_gateway_and_audited(
    approved_append, claims: dict, what: str
) -> None:
    """The grant row covers the call, but its genuinely signed token names something else: the token wins."""
    grant, arguments, operator, canary = approved_append
    Grant.objects.filter(pk=grant.pk).update(token=resign(grant, **claims))
    result = gateway.execute("shell__run_command", arguments, operator=operator)
    assert result.decision == "denied" and f"({what} differ)" in result.content
    assert runs(canary) == 0 and dispatches(arguments) == []
    (refusal,) = refusals(grant)
    assert refusal.details["policy_reason"] == f"the grant does not cover this call ({what} differ)"


def test_a_grant_revoked_between_the_lookup_and_the_use_is_refused_and_audited(
    make_operator, admin_user, tmp_path, monkeypatch
) -> None:
    operator = make_operator()
    canary = tmp_path / "canary"
    arguments = append(canary)
    gateway.execute("shell__run_command", arguments, operator=operator)
    grant = services.approve(AccessRequest.objects.get().pk, actor=admin_user, scope="tool", ttl_minutes=10)
    lookup = services.find_live_grant

    def revoked_right_after_the_lookup(**kwargs: object) -> Grant | None:
        found = lookup(**kwargs)
        if found is not None:
            services.revoke(found.pk, actor=admin_user)  # an approver clicks Revoke at this very moment
        return found

    monkeypatch.setattr(services, "find_live_grant", revoked_right_after_the_lookup)
    result = gateway.execute("shell__run_command", arguments, operator=operator)
    assert (result.decision, result.content) == ("denied", "denied: the grant was revoked")
    assert runs(canary) == 0 and dispatches(arguments) == []
    (refusal,) = refusals(grant)
    assert refusal.details["policy_reason"] == "the grant was revoked" and refusal.actor == "fixer"
    assert Grant.objects.get(pk=grant.pk).uses == 0


def test_a_replayed_single_use_grant_runs_once_and_the_replay_is_audited(approved_append, monkeypatch) -> None:
    grant, arguments, operator, canary = approved_append
    captured = Grant.objects.get(pk=grant.pk)  # what a replayer holds: the grant as it was before its use
    first = gateway.execute("shell__run_command", arguments, operator=operator)
    assert first.ok and first.decision == "approved" and runs(canary) == 1

    monkeypatch.setattr(services, "find_live_grant", lambda **kwargs: captured)
    replay = gateway.execute("shell__run_command", arguments, operator=operator)
    assert (replay.decision, replay.content) == ("denied", "denied: the grant was already used")
    assert runs(canary) == 1 and len(dispatches(arguments)) == 1
    (refusal,) = refusals(grant)
    assert refusal.details["policy_reason"] == "the grant was already used"
    assert Grant.objects.get(pk=grant.pk).uses == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_through_the_gateway_run_the_tool_exactly_once(approved_append, monkeypatch) -> None:
    grant, arguments, operator, canary = approved_append
    replayers = 6
    # Every replayer finds the live grant before any of them uses it: all of them race for the one use.
    everyone_has_it = threading.Barrier(replayers, timeout=30)
    lookup = services.find_live_grant

    def lookup_then_wait(**kwargs: object) -> Grant | None:
        found = lookup(**kwargs)
        everyone_has_it.wait()
        return found

    monkeypatch.setattr(services, "find_live_grant", lookup_then_wait)
    results: list[gateway.ToolResult] = []

    def replay() -> None:
        try:
            results.append(gateway.execute("shell__run_command", arguments, operator=operator))
        finally:
            connection.close()

    threads = [threading.Thread(target=replay) for _ in range(replayers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs(canary) == 1, "the tool ran exactly once"
    assert sorted((r.decision, r.content if not r.ok else "ran") for r in results) == [("approved", "ran")] + [
        ("denied", "denied: the grant was already used")
    ] * (replayers - 1)
    assert Grant.objects.get(pk=grant.pk).uses == 1
    assert [r.details["policy_reason"] for r in refusals(grant)] == ["the grant was already used"] * (replayers - 1)
    assert len(dispatches(arguments)) == 1


@pytest.mark.django_db(transaction=True)
def test_racing_approvers_produce_exactly_one_decision(make_operator, admin_user, tmp_path) -> None:
    gateway.execute("shell__run_command", touch(tmp_path / "r"), operator=make_operator())
    request = AccessRequest.objects.get()
    other = make_user("abe", Role.APPROVER)
    outcomes: list[str] = []

    def decide(actor, verb) -> None:
        try:
            if verb == "approve":
                services.approve(request.pk, actor=actor)
            else:
                services.deny(request.pk, actor=actor, reason="no")
            outcomes.append(verb)
        except ValidationError:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(a, v))
        for a, v in [(admin_user, "approve"), (other, "deny"), (admin_user, "approve"), (other, "deny")]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("conflict") == 3
    assert Grant.objects.count() == (1 if "approve" in outcomes else 0)


def test_settings_keep_default_ttl_within_the_maximum(admin_user) -> None:
    with pytest.raises(ValidationError, match="cannot be longer"):
        update_site_settings(actor=admin_user, grant_default_ttl_minutes=90)


# --- the Operator's own tools only -------------------------------------------------------------------


@pytest.mark.parametrize("lenient", [False, True])
def test_a_tool_not_assigned_to_the_operator_is_refused_read_or_not(make_operator, tmp_path, lenient: bool) -> None:
    """Only its own tools are offered to an Operator's model, but the gate does not trust the model's answer: a call
    to another tool is denied in code, before any request or dispatch, even a read and even in lenient mode."""
    operator = make_operator(jit_mode="lenient" if lenient else "strict")
    operator.tools.clear()
    canary = tmp_path / "canary"
    read = gateway.execute("shell__run_command", {"command": "uptime"}, operator=operator)
    write = gateway.execute("shell__run_command", append(canary), operator=operator)
    for result in (read, write):
        assert (result.ok, result.decision) == (False, "denied")
        assert result.content == "denied: shell__run_command is not one of fixer's tools"
    assert runs(canary) == 0 and not AccessRequest.objects.exists() and not Grant.objects.exists()
    decisions = AuditEntry.objects.filter(event="tool_call.decision").order_by("sequence")
    assert [(e.decision, e.details["policy_reason"]) for e in decisions] == [
        ("denied", "shell__run_command is not one of fixer's tools")
    ] * 2
    assert not AuditEntry.objects.filter(event="tool_call.outcome").exclude(outcome="not_run").exists()
