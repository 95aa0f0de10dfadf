"""The HTTP API under /api/v1/: what a script with a personal access token can do, and what it is refused.

Most tests go through Django's test client (the whole request path: middleware, URL resolver, ninja); the runs are
driven by the session's real Celery worker and a scripted model on real HTTP, and one test walks the contract
check's steps through a real HTTP server.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from jit.choices import RequestStatus
from jit.models import AccessRequest
from operators.choices import RunStatus, TaskSource
from operators.models import Operator, Run
from providers.services import create_provider
from tests.conftest import make_user, wait_for
from tests.fakes.llm import FakeLLMServer, text, tool_call
from tools.models import Tool
from tools.services import discover_all
from vigilus.choices import Role, TokenRole
from vigilus.models import ApiToken
from vigilus.services import create_token, revoke_token, set_role

SHELL = "shell__run_command"
JSON = "application/json"


def bearer(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}", enforce_csrf_checks=True)


def token_of(user: User, role: str, name: str = "script", **kwargs: Any) -> str:
    return create_token(user, name=name, role=role, **kwargs)[1]


def post(client: Client, url: str, body: Any = None, raw: str | None = None) -> Any:
    return client.post(url, data=raw if raw is not None else json.dumps(body or {}), content_type=JSON)


def runs_show_json(run_id: int) -> dict[str, Any]:
    out = StringIO()
    call_command("runs", "show", str(run_id), "--json", stdout=out)
    return json.loads(out.getvalue())


# --- authentication ------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/runs", "/api/v1/operators", "/api/v1/openapi.json", "/api/v1/docs"])
def test_without_a_token_every_endpoint_answers_401(url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.django_db
def test_unknown_revoked_and_expired_tokens_answer_401(approver_user: User) -> None:
    live = token_of(approver_user, "viewer", name="live")
    revoked_token, revoked = create_token(approver_user, name="old", role="viewer")
    revoke_token(revoked_token, actor=approver_user)
    expired_token, expired = create_token(approver_user, name="short", role="viewer", expires_days=1)
    ApiToken.objects.filter(pk=expired_token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert bearer(live).get("/api/v1/runs").status_code == 200
    for token in (revoked, expired, live[:-1] + ("A" if live[-1] != "A" else "B"), "vgl_nothing", "not-a-token"):
        response = bearer(token).get("/api/v1/runs")
        assert response.status_code == 401, token
    assert post(bearer(revoked), "/api/v1/tasks", {"task": "uptime"}).status_code == 401


@pytest.mark.django_db
def test_a_deactivated_persons_token_answers_401(approver_user: User) -> None:
    token = token_of(approver_user, "approver")
    approver_user.is_active = False
    approver_user.save()
    assert bearer(token).get("/api/v1/runs").status_code == 401


@pytest.mark.django_db
def test_a_token_in_the_query_string_is_not_accepted(approver_user: User) -> None:
    """Tokens go in a header: a URL ends up in proxy logs and browser history."""
    token = token_of(approver_user, "viewer")
    assert Client().get(f"/api/v1/runs?token={token}").status_code == 401


# --- roles ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_viewer_token_reads_but_cannot_submit(approver_user: User) -> None:
    client = bearer(token_of(approver_user, "viewer"))
    assert client.get("/api/v1/runs").status_code == 200
    response = post(client, "/api/v1/tasks", {"task": "reboot the nas"})
    assert response.status_code == 403
    assert "submitter" in response.json()["detail"]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_a_submitter_token_submits_and_the_run_is_the_json_of_runs_show(approver_user: User) -> None:
    client = bearer(token_of(approver_user, "submitter", name="ci"))
    response = post(client, "/api/v1/tasks", {"task": "check the disks"})
    assert response.status_code == 201
    body = response.json()
    run = Run.objects.get(pk=body["id"])
    assert (run.task, run.source, run.started_by, run.source_detail) == (
        "check the disks",
        TaskSource.API,
        approver_user,
        "token ci",
    )
    assert body == runs_show_json(run.pk)
    assert client.get(f"/api/v1/runs/{run.pk}").json() == runs_show_json(run.pk)


@pytest.mark.django_db
def test_a_token_never_grants_more_than_its_persons_role(viewer_user: User) -> None:
    """A viewer's token made with the approver role acts as a viewer; demoting a person demotes their tokens."""
    client = bearer(token_of(viewer_user, "approver"))
    assert client.get("/api/v1/runs").status_code == 200
    refused = post(client, "/api/v1/tasks", {"task": "reboot the nas"})
    assert refused.status_code == 403 and "acts as viewer" in refused.json()["detail"]
    assert client.get("/api/v1/requests").status_code == 403

    approver = make_user("otto", Role.APPROVER)
    approver_client = bearer(token_of(approver, "approver"))
    assert approver_client.get("/api/v1/requests").status_code == 200
    set_role(approver, Role.VIEWER)
    assert approver_client.get("/api/v1/requests").status_code == 403


@pytest.mark.django_db
def test_a_submitter_cannot_decide_access_requests(approver_user: User) -> None:
    request = AccessRequest.objects.create(
        tool=SHELL, intent="exec", target="nas", expires_at=timezone.now() + timedelta(minutes=5)
    )
    client = bearer(token_of(approver_user, "submitter"))
    assert post(client, f"/api/v1/requests/{request.pk}/approve").status_code == 403
    assert post(client, f"/api/v1/requests/{request.pk}/deny", {"reason": "no"}).status_code == 403
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING


@pytest.mark.django_db
def test_an_approver_denies_naming_the_reason_and_a_second_decision_conflicts(approver_user: User) -> None:
    request = AccessRequest.objects.create(
        tool=SHELL, intent="exec", target="nas", expires_at=timezone.now() + timedelta(minutes=5)
    )
    client = bearer(token_of(approver_user, "approver"))
    assert [r["id"] for r in client.get("/api/v1/requests").json()] == [request.pk]
    too_long = post(client, f"/api/v1/requests/{request.pk}/approve", {"ttl_minutes": 100000})
    assert too_long.status_code == 400 and too_long.json()["field"] == "ttl_minutes"
    unknown_scope = post(client, f"/api/v1/requests/{request.pk}/approve", {"scope": "forever"})
    assert unknown_scope.status_code == 400 and unknown_scope.json()["field"] == "scope"
    missing = post(client, f"/api/v1/requests/{request.pk}/deny", {})
    assert missing.status_code == 400 and missing.json()["field"] == "reason"
    denied = post(client, f"/api/v1/requests/{request.pk}/deny", {"reason": "not during backups"})
    assert denied.status_code == 200
    assert (denied.json()["status"], denied.json()["decided_by"]) == ("denied", "bert")
    again = post(client, f"/api/v1/requests/{request.pk}/approve")
    assert again.status_code == 409 and "already denied" in again.json()["detail"]
    assert post(client, "/api/v1/requests/999999/approve").status_code == 404
    assert client.get("/api/v1/requests").json() == []


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("{not json", "body"),
        ("", "body"),
        ("[1, 2]", "body"),
        ("{}", "task"),
        ('{"task": "   "}', "task"),
        ('{"task": 5}', "task"),
        ('{"task": "x", "operator": "nobody"}', "operator"),
        ('{"task": "x", "opertor": "fixer"}', "opertor"),
        ('{"task": "x", "plan": "maybe"}', "plan"),
    ],
)
def test_bad_input_is_400_naming_the_field(approver_user: User, raw: str, field: str) -> None:
    response = post(bearer(token_of(approver_user, "submitter")), "/api/v1/tasks", raw=raw)
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field and body["detail"].startswith(f"{field}: ")
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_bad_filters_are_400_and_an_unknown_run_is_404(approver_user: User) -> None:
    client = bearer(token_of(approver_user, "viewer"))
    response = client.get("/api/v1/runs?status=exploded")
    assert response.status_code == 400 and response.json()["field"] == "status"
    assert client.get("/api/v1/runs?limit=0").json()["field"] == "limit"
    missing = client.get("/api/v1/runs/424242")
    assert missing.status_code == 404 and missing.json() == {"detail": "No run #424242."}


@pytest.mark.django_db
def test_plan_true_queues_a_run_in_plan_mode(approver_user: User) -> None:
    client = bearer(token_of(approver_user, "submitter"))
    planned = post(client, "/api/v1/tasks", {"task": "upgrade the lab", "plan": True})
    assert planned.status_code == 201 and planned.json()["plan_mode"] is True and planned.json()["plan"] is None
    assert planned.json()["turns"] == [{"message": "upgrade the lab", "answer": "", "status": "queued", "by": "bert"}]
    assert post(client, "/api/v1/tasks", {"task": "uptime"}).json()["plan_mode"] is False


@pytest.mark.django_db
def test_a_reply_to_a_run_still_working_is_400_and_to_an_unknown_run_404(approver_user: User) -> None:
    client = bearer(token_of(approver_user, "submitter"))
    run_id = post(client, "/api/v1/tasks", {"task": "uptime"}).json()["id"]
    refused = post(client, f"/api/v1/runs/{run_id}/replies", {"text": "and then?"})
    assert refused.status_code == 400 and refused.json()["field"] == "text"
    assert "reply once it has finished" in refused.json()["detail"]
    assert post(client, "/api/v1/runs/424242/replies", {"text": "hello"}).status_code == 404
    assert (
        post(
            bearer(token_of(approver_user, "viewer", name="v")), f"/api/v1/runs/{run_id}/replies", {"text": "x"}
        ).status_code
        == 403
    )


# --- listing -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_runs_are_listed_newest_first_and_filtered(approver_user: User) -> None:
    first = Run.objects.create(task="one", status=RunStatus.COMPLETED, operator_name="fixer")
    second = Run.objects.create(task="two", status=RunStatus.FAILED, operator_name="other", source=TaskSource.API)
    client = bearer(token_of(approver_user, "viewer"))
    assert [r["id"] for r in client.get("/api/v1/runs").json()] == [second.pk, first.pk]
    assert [r["id"] for r in client.get("/api/v1/runs?status=completed").json()] == [first.pk]
    assert [r["id"] for r in client.get("/api/v1/runs?operator=other").json()] == [second.pk]
    assert [r["id"] for r in client.get("/api/v1/runs?source=api").json()] == [second.pk]
    assert [r["id"] for r in client.get("/api/v1/runs?limit=1").json()] == [second.pk]


@pytest.mark.django_db
def test_providers_are_listed_without_their_secrets(admin_user: User, approver_user: User) -> None:
    api_key = "sk-test-0123456789abcdefghijklmnopqrstuv"
    create_provider(actor=admin_user, name="cloud", kind="openai", api_key=api_key, default_model="gpt-4o-mini")
    response = bearer(token_of(approver_user, "viewer")).get("/api/v1/providers")
    assert response.status_code == 200
    (row,) = response.json()
    assert (row["name"], row["api_key"]) == ("cloud", "set")
    assert api_key not in response.content.decode()


@pytest.mark.django_db
def test_operators_and_tools_are_listed_as_their_commands_print_them(admin_user: User, approver_user: User) -> None:
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    provider = create_provider(actor=admin_user, name="lab", kind="openai_compatible", base_url="http://127.0.0.1:9/v1")
    Operator.objects.create(name="fixer", provider=provider).tools.add(Tool.objects.get(qualified_name=SHELL))
    client = bearer(token_of(approver_user, "viewer"))
    for area, url in (("operators", "/api/v1/operators"), ("tools", "/api/v1/tools")):
        out = StringIO()
        call_command(area, "list", "--json", stdout=out)
        assert client.get(url).json() == json.loads(out.getvalue()), area
    assert [t["qualified_name"] for t in client.get("/api/v1/tools?server=shell").json()] == [SHELL]


# --- the docs, sessions, throttling, auditing ----------------------------------------------------------------


@pytest.mark.django_db
def test_the_openapi_schema_and_docs_page_need_a_token_or_a_session(approver_user: User, admin_client: Client) -> None:
    schema = bearer(token_of(approver_user, "viewer")).get("/api/v1/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/tasks", "/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/requests/{request_id}/approve"} <= set(
        paths
    )
    assert schema.json()["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"
    page = admin_client.get("/api/v1/docs")
    assert page.status_code == 200 and b"swagger-ui" in page.content and b"/static/ninja/" in page.content


@pytest.mark.django_db
def test_a_dashboard_session_works_and_its_changes_need_the_csrf_token(admin_user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.get("/api/v1/runs").status_code == 200
    refused = post(client, "/api/v1/tasks", {"task": "uptime"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_each_token_is_rate_limited_on_its_own(approver_user: User, settings: Any) -> None:
    settings.API_RATE_LIMIT = 3
    busy, calm = bearer(token_of(approver_user, "viewer", name="busy")), bearer(token_of(approver_user, "viewer"))
    assert [busy.get("/api/v1/runs").status_code for _ in range(3)] == [200, 200, 200]
    throttled = busy.get("/api/v1/runs")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    assert "Too many requests" in throttled.json()["detail"]
    assert calm.get("/api/v1/runs").status_code == 200


@pytest.mark.django_db
def test_each_change_is_audited_with_the_tokens_name(approver_user: User) -> None:
    client = bearer(token_of(approver_user, "submitter", name="home-assistant"))
    run_id = post(client, "/api/v1/tasks", {"task": "uptime"}).json()["id"]
    post(client, "/api/v1/requests/1/approve")  # refused: a submitter
    client.get(f"/api/v1/runs/{run_id}")  # reads are not audited
    entries = list(AuditEntry.objects.filter(event="api.request").order_by("sequence"))
    assert [(e.actor, e.target, e.decision, e.details) for e in entries] == [
        ("bert", "POST /api/v1/tasks", "", {"status": 201, "via": "token home-assistant"}),
        ("bert", "POST /api/v1/requests/1/approve", "denied", {"status": 403, "via": "token home-assistant"}),
    ]
    token = ApiToken.objects.get(name="home-assistant")
    assert token.last_used_at is not None


# --- through a worker: runs go on --------------------------------------------------------------------------


@pytest.fixture
def model() -> Iterator[FakeLLMServer]:
    with FakeLLMServer([]) as server:
        yield server


@pytest.fixture
def strict_operator(celery_worker: str, admin_user: User, model: FakeLLMServer) -> Callable[..., Operator]:
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    provider = create_provider(
        actor=admin_user, name="lab", kind="openai_compatible", base_url=model.url + "/v1", default_model="m"
    )

    def make(ceiling: str = "exec") -> Operator:
        operator = Operator.objects.create(name="fixer", provider=provider, ceiling=ceiling, jit_mode="strict")
        operator.tools.add(Tool.objects.get(qualified_name=SHELL))
        return operator

    return make


def poll(client: Client, run_id: int, statuses: tuple[str, ...]) -> dict[str, Any]:
    """GET the run until its status is one of `statuses`, as a script would."""
    seen: dict[str, Any] = {}

    def settled() -> bool:
        seen.update(client.get(f"/api/v1/runs/{run_id}").json())
        return seen["status"] in statuses

    wait_for(settled, timeout=60, what=f"run #{run_id} to reach {statuses}")
    return seen


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_an_approver_token_approves_a_strict_operators_request_and_the_run_goes_on(
    strict_operator: Callable[..., Operator], model: FakeLLMServer, approver_user: User, tmp_path: Path
) -> None:
    strict_operator()
    canary = tmp_path / "approved-over-the-api"
    model.script(tool_call(SHELL, {"command": f"touch {canary}"}), text("touched it"))
    submitter = bearer(token_of(approver_user, "submitter", name="ci"))
    approver = bearer(token_of(approver_user, "approver", name="phone"))

    created = post(submitter, "/api/v1/tasks", {"task": "make the marker", "operator": "fixer"})
    assert created.status_code == 201
    parked = poll(submitter, created.json()["id"], (RunStatus.AWAITING_APPROVAL, *RunStatus.finished()))
    assert parked["status"] == RunStatus.AWAITING_APPROVAL and not canary.exists()
    request_id = parked["tool_calls"][0]["access_request"]
    assert [r["id"] for r in approver.get("/api/v1/requests").json()] == [request_id]

    assert post(submitter, f"/api/v1/requests/{request_id}/approve").status_code == 403
    approved = post(approver, f"/api/v1/requests/{request_id}/approve", {"scope": "call"})
    assert approved.status_code == 200
    assert approved.json()["request"]["status"] == "approved" and approved.json()["grant"]["scope"] == "call"

    done = poll(submitter, created.json()["id"], RunStatus.finished())
    assert (done["status"], done["answer"]) == ("completed", "touched it") and canary.exists()
    assert done["tool_calls"][0]["decision"] == "approved"
    assert AuditEntry.objects.get(event="jit.approved", run_id=done["id"]).actor == "bert"
    attempts = AuditEntry.objects.filter(event="api.request", target=f"POST /api/v1/requests/{request_id}/approve")
    assert [(e.decision, e.details) for e in attempts.order_by("sequence")] == [
        ("denied", {"status": 403, "via": "token ci"}),
        ("", {"status": 200, "via": "token phone"}),
    ]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_plan_is_listed_approved_with_a_skip_over_the_api_and_a_reply_goes_on(
    strict_operator: Callable[..., Operator], model: FakeLLMServer, approver_user: User, tmp_path: Path
) -> None:
    strict_operator()
    first, second = tmp_path / "first", tmp_path / "second"
    model.script(
        tool_call(SHELL, {"command": f"touch {first}"}),
        tool_call(SHELL, {"command": f"touch {second}"}),
        text("plan: touch both"),
        text("touched the first"),
        text("the second was left out"),
    )
    submitter = bearer(token_of(approver_user, "submitter", name="ci"))
    approver = bearer(token_of(approver_user, "approver", name="phone"))

    created = post(submitter, "/api/v1/tasks", {"task": "make two markers", "operator": "fixer", "plan": True})
    run_id = created.json()["id"]
    parked = poll(submitter, run_id, (RunStatus.AWAITING_PLAN_APPROVAL, *RunStatus.finished()))
    assert parked["status"] == RunStatus.AWAITING_PLAN_APPROVAL and not first.exists() and not second.exists()
    assert [step["status"] for step in parked["plan"]["steps"]] == ["proposed", "proposed"]
    (listed,) = approver.get("/api/v1/plans").json()
    assert listed["run"] == run_id and [s["index"] for s in listed["steps"]] == [1, 2]
    assert submitter.get("/api/v1/plans").status_code == 403

    unknown = post(approver, f"/api/v1/runs/{run_id}/plan/approve", {"skip": [7]})
    assert unknown.status_code == 400 and unknown.json()["field"] == "skip"
    approved = post(approver, f"/api/v1/runs/{run_id}/plan/approve", {"skip": [2]})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    again = post(approver, f"/api/v1/runs/{run_id}/plan/reject", {"reason": "too late"})
    assert again.status_code == 409

    done = poll(submitter, run_id, RunStatus.finished())
    assert (done["status"], done["answer"], done["plan"]["status"]) == ("completed", "touched the first", "applied")
    assert [step["status"] for step in done["plan"]["steps"]] == ["succeeded", "skipped"]
    assert first.exists() and not second.exists()

    replied = post(submitter, f"/api/v1/runs/{run_id}/replies", {"text": "why not the second?"})
    assert replied.status_code == 201 and replied.json()["status"] == RunStatus.RUNNING
    done = poll(submitter, run_id, RunStatus.finished())
    assert [(t["message"], t["answer"]) for t in done["turns"]] == [
        ("make two markers", "touched the first"),
        ("why not the second?", "the second was left out"),
    ]


def _http(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {token}"})
    if data is not None:
        request.add_header("Content-Type", JSON)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_contract_steps_through_a_real_server(
    live_server: Any, celery_worker: str, model: FakeLLMServer, admin_user: User
) -> None:
    """What the contract check does: `users add`, `tokens add ... --json`, then submit over HTTP and poll the run."""
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    provider = create_provider(
        actor=admin_user, name="lab", kind="openai_compatible", base_url=model.url + "/v1", default_model="m"
    )
    operator = Operator.objects.create(name="fixer", provider=provider, ceiling="read_only")
    operator.tools.add(Tool.objects.get(qualified_name=SHELL))
    model.script(tool_call(SHELL, {"command": "uname -s"}), text("It is Linux."))

    call_command("users", "add", "checker", "--role", "approver", stdout=StringIO())
    out = StringIO()
    call_command("tokens", "add", "ci", "--role", "approver", "--as", "checker", "--json", stdout=out)
    token = json.loads(out.getvalue())["token"]
    base = live_server.url + "/api/v1"

    assert _http("GET", f"{base}/runs", "vgl_wrong")[0] == 401
    status, run = _http("POST", f"{base}/tasks", token, {"task": "which kernel?", "operator": "fixer"})
    assert status == 201 and run["status"] == "queued" and run["started_by"] == "checker"

    def finished() -> bool:
        run.update(_http("GET", f"{base}/runs/{run['id']}", token)[1])
        return run["status"] in RunStatus.finished()

    wait_for(finished, timeout=60, what="the run to finish")
    assert (run["status"], run["answer"], run["operator"]) == ("completed", "It is Linux.", "fixer")
    assert run == json.loads(json.dumps(runs_show_json(run["id"])))


def test_token_roles_rank_viewer_below_submitter_below_approver() -> None:
    assert [role.rank for role in (TokenRole.VIEWER, TokenRole.SUBMITTER, TokenRole.APPROVER)] == [0, 1, 2]
    assert TokenRole.APPROVER.at_most(TokenRole.for_person(Role.VIEWER)) == TokenRole.VIEWER
    assert TokenRole.SUBMITTER.at_most(TokenRole.for_person(Role.ADMIN)) == TokenRole.SUBMITTER
    assert TokenRole.VIEWER.at_most(TokenRole.for_person(None)) is None
