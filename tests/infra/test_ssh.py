"""The SSH inventory and the `ssh` built-in server against real OpenSSH servers on loopback ports:
key and password logins, host-key pinning (first contact, a changed key), a host that is down and one that
hangs, the fan-out with per-host results, connection reuse, and the mission's `apt upgrade` example
through the gateway (one grant for the host list) and through a whole run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from mcp import Client

from jit import services as jit
from jit.models import AccessRequest
from tests.infra import sshd
from tools import gateway
from tools.models import Credential, Server
from tools.servers.registry import build_builtin_server
from tools.servers.ssh import connections
from tools.services import discover_all

pytestmark = [pytest.mark.integration, pytest.mark.engine_independent, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory):
    yield from sshd.farm_fixture(tmp_path_factory.mktemp("sshd"), 4)


@pytest.fixture(autouse=True)
def _fresh_connections(settings, admin_user):  # commands act as the first admin
    settings.SSH_CONNECT_TIMEOUT = 2.0
    connections.close_all()
    yield
    connections.close_all()


def add(farm: sshd.Farm, host: sshd.Host | None, name: str, *extra: str, port: int = 0, user: str = "root") -> None:
    call_command(
        "servers",
        "add",
        "--name",
        name,
        "--address",
        "127.0.0.1",
        "--port",
        str(port or host.port),
        "--user",
        user,
        *(extra or ("--key-file", str(farm.client_key))),
    )


def trusted(farm: sshd.Farm, names: list[str], *, tags: str = "lab") -> list[sshd.Host]:
    """Add one server per farm host (tag `lab`), and pin their keys."""
    hosts = farm.hosts[: len(names)]
    for name, host in zip(names, hosts, strict=True):
        add(farm, host, name, "--key-file", str(farm.client_key), "--tags", tags)
        call_command("servers", "test", name, "--trust-host-key")
    return hosts


def call(tool: str, arguments: dict[str, Any]) -> Any:
    async def go() -> Any:
        async with Client(build_builtin_server("ssh")) as client:
            return await client.call_tool(tool, arguments)

    return anyio.run(go)


def this_machines_os() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("ID="):
            return line.split("=", 1)[1].strip('"')
    return ""


# --- Inventory ------------------------------------------------------------------------------------


def test_adding_a_server_never_contacts_it_and_keeps_the_key_encrypted(farm) -> None:
    host = farm.hosts[0]
    before = host.log().count("Connection from")
    add(farm, host, "quiet", "--key-file", str(farm.client_key), "--tags", "Lab, nas")
    server = Server.objects.get(name="quiet")
    assert server.tags == ["lab", "nas"] and server.host_key == "" and server.last_test_ok is None
    assert host.log().count("Connection from") == before
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key FROM tools_credential WHERE name = 'quiet'")
        (stored,) = cursor.fetchone()
    assert "PRIVATE KEY" not in stored and stored
    assert "PRIVATE KEY" in Credential.objects.get(name="quiet").private_key


def test_first_contact_shows_the_fingerprint_and_pins_only_when_trusted(farm, capsys) -> None:
    host = farm.hosts[0]
    add(farm, host, "first")
    with pytest.raises(CommandError) as refused:
        call_command("servers", "test", "first")
    assert host.fingerprint() in str(refused.value) and "not trusted" in str(refused.value)
    assert Server.objects.get(name="first").host_key == ""

    call_command("servers", "test", "first", "--trust-host-key")
    server = Server.objects.get(name="first")
    assert server.host_key_fingerprint == host.fingerprint() and server.last_test_ok is True
    assert server.os_id == this_machines_os() and server.os_name
    assert "pinned now" in capsys.readouterr().out

    call_command("servers", "test", "first")  # pinned: no flag needed any more
    assert "pinned now" not in capsys.readouterr().out


def test_a_changed_host_key_is_refused_before_logging_in(farm) -> None:
    host = farm.hosts[3]
    add(farm, host, "moved")
    call_command("servers", "test", "moved", "--trust-host-key")
    pinned = Server.objects.get(name="moved").host_key
    accepted_before = host.log().count("Accepted publickey")
    host.rekey()
    try:
        with pytest.raises(CommandError, match="host key has CHANGED"):
            call_command("servers", "test", "moved")
        result = call("run_command", {"command": "uptime", "target": "moved"})
        assert result.is_error and "CHANGED" in result.structured_content["hosts"][0]["error"]
        server = Server.objects.get(name="moved")
        assert server.host_key == pinned and server.last_test_ok is False
        assert host.log().count("Accepted publickey") == accepted_before  # no credential was offered
        with pytest.raises(CommandError, match="CHANGED"):  # --trust-host-key never overrides a pinned key
            call_command("servers", "test", "moved", "--trust-host-key")
        call_command("servers", "forget-key", "moved")  # the person checked: the machine was reinstalled
        call_command("servers", "test", "moved", "--trust-host-key")
        assert Server.objects.get(name="moved").host_key_fingerprint == host.fingerprint()
    finally:
        Server.objects.filter(name="moved").delete()


def test_a_down_host_and_a_silent_host_fail_with_the_reason(farm) -> None:
    add(farm, None, "down", port=farm.down_port)
    add(farm, None, "silent", port=farm.slow_port)
    with pytest.raises(CommandError, match="connection refused"):
        call_command("servers", "test", "down", "--trust-host-key")
    with pytest.raises(CommandError, match=r"no SSH answer from 127\.0\.0\.1:\d+ within 2 s"):
        call_command("servers", "test", "silent", "--trust-host-key")
    assert Server.objects.get(name="down").last_error


def test_password_login_and_a_wrong_password(farm, monkeypatch) -> None:
    host = farm.hosts[0]  # the farm's first host also accepts passwords
    monkeypatch.setenv("SSH_PW", farm.password)
    add(farm, host, "pw", "--password-env", "SSH_PW", user=farm.password_user)
    call_command("servers", "test", "pw", "--trust-host-key")
    assert call("run_command", {"command": "id -un", "target": "pw"}).structured_content["hosts"][0]["stdout"] == (
        f"{farm.password_user}\n"
    )

    monkeypatch.setenv("SSH_PW", "wrong-" + farm.password)
    add(farm, host, "badpw", "--password-env", "SSH_PW", user=farm.password_user)
    with pytest.raises(CommandError) as refused:
        call_command("servers", "test", "badpw", "--trust-host-key")
    assert "authentication" in str(refused.value) and farm.password not in str(refused.value)


def test_an_encrypted_key_needs_its_passphrase(farm, tmp_path, monkeypatch) -> None:
    key = sshd.keygen(tmp_path / "locked", passphrase="correct horse")
    with pytest.raises(CommandError, match="passphrase"):
        add(farm, farm.hosts[1], "locked", "--key-file", str(key))
    monkeypatch.setenv("PASSPHRASE", "correct horse")
    add(farm, farm.hosts[1], "locked", "--key-file", str(key), "--passphrase-env", "PASSPHRASE")
    assert Server.objects.filter(name="locked").exists()
    with pytest.raises(CommandError, match="not a private key"):
        add(farm, farm.hosts[1], "notakey", "--key-file", str(Path(str(key) + ".pub")))


def test_list_json_and_remove(farm, capsys) -> None:
    trusted(farm, ["a1"])
    capsys.readouterr()
    call_command("servers", "list", "--json")
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "a1" and row["host_key_fingerprint"] and "PRIVATE" not in str(row)
    call_command("servers", "remove", "a1")
    assert not Server.objects.exists() and not Credential.objects.exists()
    with pytest.raises(CommandError, match="no server named"):
        call_command("servers", "remove", "a1")


# --- The ssh server -------------------------------------------------------------------------------


def test_the_server_lists_its_tools_and_explains_an_empty_inventory() -> None:
    async def tools() -> list[str]:
        async with Client(build_builtin_server("ssh")) as client:
            return [t.name for t in (await client.list_tools()).tools]

    assert set(anyio.run(tools)) == {"list_servers", "run_command", "get_file", "put_file"}
    result = call("run_command", {"command": "uptime", "target": "all"})
    assert result.is_error and "no servers in the inventory" in result.content[0].text


def test_fan_out_reports_each_host_and_survives_partial_failure(farm) -> None:
    hosts = trusted(farm, ["lab0", "lab1", "lab2"])
    add(farm, None, "down", "--key-file", str(farm.client_key), "--tags", "lab", port=farm.down_port)
    add(farm, None, "silent", "--key-file", str(farm.client_key), "--tags", "lab", port=farm.slow_port)

    result = call("run_command", {"command": "echo $SSH_CONNECTION", "target": "lab", "timeout": 20})
    data = result.structured_content
    by_name = {h["server"]: h for h in data["hosts"]}
    assert sorted(by_name) == ["down", "lab0", "lab1", "lab2", "silent"]
    assert (data["succeeded"], data["failed"], result.is_error) == (3, 2, False)
    for name, host in zip(["lab0", "lab1", "lab2"], hosts, strict=True):
        assert by_name[name]["exit_code"] == 0 and by_name[name]["stdout"].split()[3] == str(host.port)
    assert "connection refused" in by_name["down"]["error"]
    assert by_name["silent"]["exit_code"] is None and by_name["silent"]["error"]
    assert "== lab1 (127.0.0.1:" in result.content[0].text


def test_connections_are_reused_between_calls(farm) -> None:
    hosts = trusted(farm, ["r0", "r1"])
    logins = [h.log().count("Accepted publickey") for h in hosts]
    for _ in range(3):
        assert call("run_command", {"command": "true", "target": "lab"}).structured_content["succeeded"] == 2
    assert [h.log().count("Accepted publickey") for h in hosts] == [n + 1 for n in logins]


def test_a_read_command_is_sent_rebuilt_with_quoting(farm, tmp_path) -> None:
    trusted(farm, ["q0"])
    odd = tmp_path / "a b;touch pwned"
    odd.write_text("inside\n")
    result = call("run_command", {"command": f'cat "{odd}"', "target": "q0"}).structured_content
    assert result["intent"] == "read" and result["hosts"][0]["stdout"] == "inside\n"
    assert result["command_sent"] == f"cat '{odd}'"  # rebuilt from the parsed words, not passed through
    assert not (tmp_path / "pwned").exists()


def test_exit_codes_stderr_and_per_host_timeout(farm) -> None:
    trusted(farm, ["t0"])
    result = call("run_command", {"command": "echo out; echo err >&2; exit 3", "target": "t0"}).structured_content
    host = result["hosts"][0]
    assert (host["exit_code"], host["stdout"], host["stderr"]) == (3, "out\n", "err\n")
    slow = call("run_command", {"command": "sleep 5", "target": "t0", "timeout": 0.5}).structured_content
    assert slow["hosts"][0]["exit_code"] is None and "no exit within" in slow["hosts"][0]["error"]


def test_files_go_up_and_come_back(farm, tmp_path) -> None:
    trusted(farm, ["f0"])
    target = tmp_path / "motd"
    written = call("put_file", {"target": "f0", "path": str(target), "content": "hello\n", "mode": "600"})
    assert not written.is_error and target.read_text() == "hello\n" and oct(target.stat().st_mode)[-3:] == "600"
    back = call("get_file", {"target": "f0", "path": str(target)}).structured_content
    assert back["content"] == "hello\n" and back["encoding"] == "utf-8"
    assert "no such file" in call("get_file", {"target": "f0", "path": str(tmp_path / "nope")}).content[0].text


# --- Through the gateway ----------------------------------------------------------------------------


@pytest.fixture
def ssh_operator(admin_user):
    from operators.models import Operator
    from providers.services import create_provider

    discover_all()
    provider = create_provider(
        actor=admin_user, name="p", kind="openai_compatible", base_url="http://127.0.0.1:9/v1", default_model="m"
    )

    def make(jit_mode: str = "lenient", ceiling: str = "exec") -> Operator:
        from tools.models import Tool

        operator = Operator.objects.create(
            name=f"ops-{jit_mode}", provider=provider, ceiling=ceiling, jit_mode=jit_mode
        )
        operator.tools.add(*Tool.objects.filter(server__name="ssh"))
        return operator

    return make


def mark_ubuntu(*names: str) -> None:
    """This machine's sshd hosts all run its own OS (Debian): pretend, as a test would have detected, that
    some run Ubuntu."""
    Server.objects.filter(name__in=names).update(os_id="ubuntu", os_name="Ubuntu 24.04 LTS")


def test_apt_upgrade_across_the_ubuntu_hosts_is_one_grant_for_the_host_list(farm, ssh_operator) -> None:
    hosts = trusted(farm, ["u1", "u2", "d1"])
    mark_ubuntu("u1", "u2")
    lines: list[str] = []
    result = gateway.execute(
        "ssh__run_command",
        {"command": "apt update && apt upgrade -y", "target": "os:ubuntu"},
        operator=ssh_operator("lenient"),
        reason="monthly upgrades",
        progress=lambda value, total, message: lines.append(message),
    )
    assert result.ok and result.intent == "exec" and result.decision == "auto_approved"
    request = AccessRequest.objects.get()
    assert request.target == "ssh:u1,u2" and request.arguments["target"] == "os:ubuntu"
    calls = farm.apt_calls()
    assert sorted(calls) == sorted(h.port for h in hosts[:2])
    assert all("apt update" in text and "apt upgrade -y" in text for text in calls.values())
    assert sorted(line.split(":")[0] for line in lines) == ["u1", "u2"] and all("exit 0" in x for x in lines)


def test_a_strict_fan_out_waits_for_a_person_and_the_grant_names_the_hosts(farm, ssh_operator, admin_user) -> None:
    trusted(farm, ["s1", "s2"])
    operator = ssh_operator("strict")
    command = {"command": "touch /tmp/vigilus-ssh-$PPID", "target": "lab"}
    pending = gateway.execute("ssh__run_command", command, operator=operator)
    assert pending.decision == "pending"
    request = AccessRequest.objects.get(pk=pending.request_id)
    assert request.target == "ssh:s1,s2"
    jit.approve(request.pk, actor=admin_user, scope="tool", ttl_minutes=5)
    assert gateway.execute("ssh__run_command", command, operator=operator).ok
    # A host joining the tag changes the host list: the grant for s1,s2 does not cover it.
    add(farm, farm.hosts[2], "s3", "--key-file", str(farm.client_key), "--tags", "lab")
    assert gateway.execute("ssh__run_command", command, operator=operator).decision == "pending"


def test_sudo_is_elevate_and_an_unknown_target_is_refused(farm, ssh_operator) -> None:
    trusted(farm, ["e1"])
    operator = ssh_operator()
    denied = gateway.execute("ssh__run_command", {"command": "sudo reboot", "target": "e1"}, operator=operator)
    assert denied.intent == "elevate" and denied.decision == "denied" and not denied.ok
    unknown = gateway.execute("ssh__run_command", {"command": "uptime", "target": "nas"}, operator=operator)
    assert unknown.decision == "invalid" and "neither a server nor a tag" in unknown.content
    read = gateway.execute("ssh__run_command", {"command": "uptime", "target": "e1"}, operator=operator)
    assert read.ok and read.intent == "read" and read.decision == "allowed"


def test_the_run_transcript_shows_progress_per_host(farm, celery_worker, admin_client, admin_user) -> None:
    from operators.choices import RunStatus
    from operators.models import Operator, Run
    from operators.services import run_json, submit_task
    from providers.services import create_provider
    from tests.conftest import wait_for
    from tests.fakes.llm import FakeLLMServer, text, tool_call
    from tools.models import Tool

    trusted(farm, ["p1", "p2", "p3"])
    mark_ubuntu("p1", "p2", "p3")
    discover_all()
    with FakeLLMServer([]) as model:
        provider = create_provider(
            actor=admin_user, name="lab", kind="openai_compatible", base_url=model.url + "/v1", default_model="m"
        )
        operator = Operator.objects.create(name="patcher", provider=provider, ceiling="exec", jit_mode="lenient")
        operator.tools.add(Tool.objects.get(qualified_name="ssh__run_command"))
        model.script(
            tool_call("ssh__run_command", {"command": "apt update && apt upgrade -y", "target": "os:ubuntu"}),
            text("All three hosts are upgraded."),
        )
        run = submit_task("apt upgrade every Ubuntu host", operator=operator)
        wait_for(lambda: Run.objects.get(pk=run.pk).status in RunStatus.finished(), timeout=60, what="the run")
    data = run_json(Run.objects.get(pk=run.pk))
    assert data["status"] == "completed", data
    (tool_call_row,) = Run.objects.get(pk=run.pk).tool_calls.all()
    assert sorted(line.split(":")[0] for line in tool_call_row.progress) == ["p1", "p2", "p3"]
    page = admin_client.get(f"/runs/{run.pk}/").content.decode()
    assert all(re.search(rf"<li>p{i}: exit 0", page) for i in (1, 2, 3)), page[:2000]
