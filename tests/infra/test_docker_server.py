"""The `docker` built-in server against a real Docker-API engine (podman's service, see docker_engine.py),
driven through the MCP protocol; and its per-call intent rule, alone and through the gateway's classifier."""

from __future__ import annotations

import glob
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import docker
import pytest
from mcp import Client
from mcp_types import CallToolResult

from tests.infra.docker_engine import PodmanEngine, docker_engine_fixture  # noqa: F401 - the session fixture
from tools.choices import Intent, Transport
from tools.intent import classify_call
from tools.models import DockerEndpoint, MCPServer, Tool
from tools.servers.docker.engine import forget_clients, tls_parent_dir
from tools.servers.docker.intent import call_intent
from tools.servers.registry import build_builtin_server

pytestmark = [pytest.mark.integration, pytest.mark.engine_independent]

READ_TOOLS = {
    "list_endpoints",
    "list_containers",
    "inspect_container",
    "container_logs",
    "container_stats",
    "list_compose_projects",
    "list_images",
    "list_volumes",
    "list_networks",
    "inspect_network",
}
WRITE_TOOLS = {
    "start_container",
    "stop_container",
    "restart_container",
    "compose_up",
    "compose_restart",
    "compose_pull",
    "pull_image",
    "create_volume",
    "create_network",
}
DESTRUCTIVE_TOOLS = {
    "remove_container",
    "remove_image",
    "remove_volume",
    "remove_network",
    "compose_down",
    "run_container",
    "create_container",
}
# The test engine gives containers no network (see docker_engine.py): every container here has network_mode none.
LOOPING = "echo {marker}; trap 'exit 0' TERM; while true; do sleep 1 & wait; done"


def call(tool: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
    async def go() -> CallToolResult:
        async with Client(build_builtin_server("docker")) as client:
            return await client.call_tool(tool, arguments or {})

    return anyio.run(go)


def ok(tool: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
    result = call(tool, arguments)
    assert not result.is_error, text_of(result)
    return result


def failed(tool: str, arguments: dict[str, Any] | None = None) -> str:
    result = call(tool, arguments)
    assert result.is_error, text_of(result)
    return text_of(result)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    yield
    forget_clients()


@pytest.fixture
def engine_endpoint(docker_engine: PodmanEngine, transactional_db: None) -> DockerEndpoint:
    """The podman engine as the default Docker endpoint."""
    return DockerEndpoint.objects.create(name="test-podman", url=docker_engine.url, is_default=True)


@pytest.fixture(scope="module")
def sdk(docker_engine: PodmanEngine) -> Iterator[docker.DockerClient]:
    """A Docker SDK client of the test's own, for setting things up and checking what the tools did."""
    client = docker_engine.client()
    yield client
    client.close()


# --- Without an engine ----------------------------------------------------------------------------


def test_every_tool_is_listed_with_its_intent_when_no_engine_is_configured() -> None:
    async def go() -> Any:
        async with Client(build_builtin_server("docker")) as client:
            return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in anyio.run(go)}
    assert set(tools) == READ_TOOLS | WRITE_TOOLS | DESTRUCTIVE_TOOLS
    for name, tool in tools.items():
        hints = tool.annotations
        assert hints is not None and hints.title, name
        assert hints.read_only_hint is (name in READ_TOOLS), name
        if name not in READ_TOOLS:
            assert hints.destructive_hint is (name in DESTRUCTIVE_TOOLS), name
        if name != "list_endpoints":
            assert "endpoint" in tool.input_schema["properties"], name


@pytest.mark.django_db(transaction=True)
def test_a_call_without_an_engine_says_where_it_looked_and_what_to_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = f"unix://{tempfile.gettempdir()}/{unique('no-engine')}.sock"
    monkeypatch.setenv("DOCKER_HOST", missing)
    message = failed("list_containers")
    assert f"no Docker engine at {missing} (the local engine): the socket does not exist" in message
    assert "configure a Docker endpoint in the dashboard (Infrastructure)" in message
    # The server is still usable afterwards: the endpoints tool needs no engine.
    assert f"the local engine at {missing}" in text_of(ok("list_endpoints"))


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_tls_endpoint_fails_clearly_and_leaves_no_key_file_behind() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nTOTALLY-SECRET-KEY-MATERIAL\n-----END PRIVATE KEY-----\n"
    DockerEndpoint.objects.create(
        name="remote",
        url="tcp://127.0.0.1:9",
        tls_ca_certificate="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        tls_client_certificate="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        tls_client_key=key,
    )
    before = set(glob.glob(f"{tls_parent_dir()}/vigilus-docker-tls-*"))
    message = failed("list_images", {"endpoint": "remote"})
    assert "no Docker engine at tcp://127.0.0.1:9 (endpoint 'remote')" in message
    assert "TOTALLY-SECRET" not in message
    assert set(glob.glob(f"{tls_parent_dir()}/vigilus-docker-tls-*")) == before


def test_tls_material_is_written_privately_for_the_client() -> None:
    from tools.servers.docker.engine import _tls_config

    endpoint = DockerEndpoint(
        name="tls",
        url="tcp://127.0.0.1:2376",
        tls_ca_certificate="CA-PEM",
        tls_client_certificate="CERT-PEM",
        tls_client_key="KEY-PEM",
    )
    tls, directory = _tls_config(endpoint)
    try:
        assert directory is not None and directory.stat().st_mode & 0o777 == 0o700
        assert tls.ca_cert == str(directory / "ca.pem") and tls.verify is True
        cert, key = tls.cert
        assert Path(key).read_text() == "KEY-PEM\n" and Path(key).stat().st_mode & 0o777 == 0o600
        assert Path(cert).stat().st_mode & 0o777 == 0o600
    finally:
        shutil.rmtree(directory)
    assert _tls_config(DockerEndpoint(name="plain", url="unix:///run/docker.sock")) == (None, None)


@pytest.mark.django_db(transaction=True)
def test_endpoint_choice_is_explicit_when_several_are_configured() -> None:
    DockerEndpoint.objects.create(name="one", url="unix:///nonexistent/one.sock")
    DockerEndpoint.objects.create(name="two", url="unix:///nonexistent/two.sock")
    assert "several Docker endpoints are configured (one, two)" in failed("list_containers")
    assert "no Docker endpoint named 'three' (configured endpoints: one, two)" in failed(
        "list_containers", {"endpoint": "three"}
    )
    assert "no Docker engine at unix:///nonexistent/two.sock (endpoint 'two')" in failed(
        "list_volumes", {"endpoint": "two"}
    )


# --- Per-call intent ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"privileged": True}, "privileged"),
        ({"privileged": "false"}, "privileged"),  # anything but an explicit false counts
        ({"volumes": ["/etc:/host-etc:ro"]}, "host path /etc"),
        ({"volumes": ["./data:/data"]}, "host path ./data"),
        ({"volumes": ["~/src:/src"]}, "host path ~/src"),
        ({"volumes": ["cache:/cache", "/var/run/docker.sock:/var/run/docker.sock"]}, "docker.sock"),
        ({"cap_add": ["NET_ADMIN"]}, "NET_ADMIN"),
        ({"devices": ["/dev/kvm"]}, "/dev/kvm"),
        ({"network_mode": "host"}, "host's network"),
        ({"pid_mode": "host"}, "process table"),
        ({"ipc_mode": "host"}, "IPC"),
        ({"security_opt": ["seccomp=unconfined"]}, "seccomp=unconfined"),
        ({"volumes": ["not-a-volume"]}, "could not be checked"),
    ],
)
def test_containers_that_reach_into_the_host_are_elevate(arguments: dict[str, Any], reason: str) -> None:
    for tool in ("run_container", "create_container"):
        intent, why = call_intent(tool, {"image": "busybox", **arguments})
        assert intent == Intent.ELEVATE
        assert reason in why


def test_a_plain_container_is_exec_and_other_tools_keep_their_annotation() -> None:
    plain = {
        "image": "nginx:1.27",
        "volumes": ["site-data:/usr/share/nginx/html:ro"],
        "ports": {"80/tcp": 8080},
        "network_mode": "bridge",
        "security_opt": ["no-new-privileges"],
        "privileged": False,
    }
    assert call_intent("run_container", plain) == (
        Intent.EXEC,
        "runs a program from image nginx:1.27 in a new container",
    )
    assert call_intent("create_container", {"image": "busybox"})[0] == Intent.EXEC
    assert call_intent("list_containers", {"all": True}) is None
    assert call_intent("remove_container", {"container": "x", "force": True}) is None


@pytest.mark.django_db(transaction=True)
def test_the_gateway_classifier_sees_the_per_call_intent_of_discovered_tools() -> None:
    from tools.services import discover_server, sync_configured_servers

    sync_configured_servers()
    server = MCPServer.objects.get(name="docker")
    assert server.transport == Transport.BUILTIN
    report = discover_server(server)
    assert report.tools == 26, report
    tools = {tool.name: tool for tool in Tool.objects.filter(server=server)}

    assert classify_call(tools["list_containers"], {}).intent == Intent.READ
    assert classify_call(tools["stop_container"], {"container": "web"}).intent == Intent.WRITE
    assert classify_call(tools["remove_volume"], {"name": "data"}).intent == Intent.WRITE
    assert classify_call(tools["run_container"], {"image": "busybox"}).intent == Intent.EXEC
    assert classify_call(tools["create_container"], {"image": "busybox"}).intent == Intent.EXEC
    elevated = classify_call(tools["run_container"], {"image": "busybox", "volumes": ["/:/host"]})
    assert elevated.intent == Intent.ELEVATE and "host path /" in elevated.reason
    assert classify_call(tools["run_container"], {"image": "busybox", "privileged": True}).intent == Intent.ELEVATE


# --- With the engine ------------------------------------------------------------------------------


def test_a_container_through_its_whole_life(
    engine_endpoint: DockerEndpoint,
    docker_engine: PodmanEngine,
    sdk: docker.DockerClient,
) -> None:
    name, marker = unique("vigilus-life"), unique("MARKER")
    started = ok(
        "run_container",
        {
            "image": docker_engine.image,
            "command": ["sh", "-c", LOOPING.format(marker=marker)],
            "name": name,
            "env": {
                "DB_PASSWORD": "hunter2-very-secret",
                "DATABASE_URL": "postgres://app:url-secret-pw@db:5432/app",
                "MODE": "test",
            },
            "network_mode": "none",
            "labels": {"purpose": "vigilus-test"},
        },
    )
    assert started.structured_content["state"] == "running"
    try:
        listed = ok("list_containers", {"name": name}).structured_content["containers"]
        assert [c["name"] for c in listed] == [name] and listed[0]["state"] == "running"
        assert name in text_of(ok("list_containers", {"label": ["purpose=vigilus-test"]}))

        inspected = ok("inspect_container", {"container": name})
        details = inspected.structured_content
        assert details["running"] is True and details["labels"]["purpose"] == "vigilus-test"
        assert "DB_PASSWORD=<hidden>" in details["env"] and "MODE=test" in details["env"]
        assert "DATABASE_URL=postgres://app:***@db:5432/app" in details["env"]
        assert "hunter2-very-secret" not in text_of(inspected) and "url-secret-pw" not in text_of(inspected)

        time.sleep(0.3)
        assert marker in text_of(ok("container_logs", {"container": name, "tail": 50}))
        assert marker in text_of(ok("container_logs", {"container": name, "since": "5m"}))

        stats = ok("container_stats", {"container": name}).structured_content
        assert stats["pids"] >= 1 and stats["memory_usage_bytes"] > 0
        assert stats["cpu_percent"] is not None and stats["cpu_percent"] >= 0

        stopped = ok("stop_container", {"container": name, "timeout": 5}).structured_content
        assert stopped["state"] == "exited"
        assert sdk.containers.get(name).status == "exited"
        assert name not in text_of(ok("list_containers"))  # running ones only
        assert name in text_of(ok("list_containers", {"all": True}))

        assert ok("start_container", {"container": name}).structured_content["state"] == "running"
        first_start = sdk.containers.get(name).attrs["State"]["StartedAt"]
        assert ok("restart_container", {"container": name, "timeout": 5}).structured_content["state"] == "running"
        assert sdk.containers.get(name).attrs["State"]["StartedAt"] != first_start

        assert "is running: stop it first" in failed("remove_container", {"container": name})
        ok("remove_container", {"container": name, "force": True})
        assert not sdk.containers.list(all=True, filters={"name": name})
        assert f"no container named '{name}'" in failed("inspect_container", {"container": name})
    finally:
        for container in sdk.containers.list(all=True, filters={"name": name}):
            container.remove(force=True)


def test_stats_of_a_stopped_container_are_refused(
    engine_endpoint: DockerEndpoint,
    docker_engine: PodmanEngine,
    sdk: docker.DockerClient,
) -> None:
    name = unique("vigilus-stopped")
    sdk.containers.create(docker_engine.image, ["true"], name=name, network_mode="none")
    try:
        assert f"container {name} is created: stats exist only for a running container" in failed(
            "container_stats", {"container": name}
        )
    finally:
        sdk.containers.get(name).remove(force=True)


def test_a_waited_run_returns_exit_code_and_output_and_can_remove_itself(
    engine_endpoint: DockerEndpoint,
    docker_engine: PodmanEngine,
    sdk: docker.DockerClient,
) -> None:
    name = unique("vigilus-once")
    result = ok(
        "run_container",
        {
            "image": docker_engine.image,
            "command": "sh -c 'echo out-$((6*7)); echo err >&2; exit 3'",
            "name": name,
            "network_mode": "none",
            "detach": False,
            "timeout": 30,
            "remove": True,
        },
    )
    run = result.structured_content
    assert run["exit_code"] == 3 and run["removed"] is True and not run["timed_out"]
    assert "out-42" in run["logs"] and "err" in run["logs"]
    assert "exit code 3" in text_of(result)
    assert not sdk.containers.list(all=True, filters={"name": name})


def test_create_container_creates_without_starting(
    engine_endpoint: DockerEndpoint,
    docker_engine: PodmanEngine,
    sdk: docker.DockerClient,
) -> None:
    name, volume = unique("vigilus-created"), unique("vigilus-vol")
    result = ok(
        "create_container",
        {
            "image": docker_engine.image,
            "command": ["true"],
            "name": name,
            "volumes": [f"{volume}:/data:ro"],
            "network_mode": "none",
        },
    )
    try:
        assert result.structured_content["state"] == "created"
        mounts = sdk.containers.get(name).attrs["Mounts"]
        assert [(m["Name"], m["Destination"], m["RW"]) for m in mounts] == [(volume, "/data", False)]
    finally:
        sdk.containers.get(name).remove(force=True)
        sdk.volumes.get(volume).remove(force=True)


def test_a_missing_image_is_not_pulled_implicitly_and_bad_settings_are_refused(
    engine_endpoint: DockerEndpoint, docker_engine: PodmanEngine, sdk: docker.DockerClient
) -> None:
    message = failed("run_container", {"image": "localhost/vigilus-not-here:1"})
    assert "is not on endpoint 'test-podman': pull it first with pull_image" in message
    message = failed("run_container", {"image": docker_engine.image, "volumes": ["just-a-name"]})
    assert "is not SOURCE:TARGET" in message
    # The test engine refuses bridge networking (see docker_engine.py): a start failure leaves nothing behind.
    name = unique("vigilus-nostart")
    message = failed("run_container", {"image": docker_engine.image, "command": ["true"], "name": name})
    assert "could not start on endpoint 'test-podman' and was removed again" in message
    assert "use network_mode none" in message
    assert not sdk.containers.list(all=True, filters={"name": name})
    message = failed("container_logs", {"container": "whatever", "since": "yesterday-ish"})
    assert "since='yesterday-ish' is not understood" in message


def test_a_failed_pull_reports_the_registrys_error(engine_endpoint: DockerEndpoint) -> None:
    message = failed("pull_image", {"image": "127.0.0.1:9/vigilus/nothing:1"})
    assert "pulling 127.0.0.1:9/vigilus/nothing:1 failed on endpoint 'test-podman'" in message
    assert "connection refused" in message


def test_a_changed_endpoint_is_used_at_once(engine_endpoint: DockerEndpoint) -> None:
    assert "test-podman" in text_of(ok("list_volumes"))
    engine_endpoint.url = "unix:///nonexistent/moved.sock"
    engine_endpoint.save()
    assert "no Docker engine at unix:///nonexistent/moved.sock (endpoint 'test-podman')" in failed("list_volumes")


def test_images_are_listed(engine_endpoint: DockerEndpoint, docker_engine: PodmanEngine) -> None:
    result = ok("list_images")
    tags = [tag for image in result.structured_content["images"] for tag in image["tags"]]
    assert docker_engine.image in tags
    assert docker_engine.image in text_of(ok("list_images", {"reference": "localhost/vigilus-busybox"}))
    assert "no image 'localhost/vigilus-none:1'" in failed("remove_image", {"image": "localhost/vigilus-none:1"})


def test_a_compose_project_is_listed_restarted_started_and_brought_down(
    engine_endpoint: DockerEndpoint,
    docker_engine: PodmanEngine,
    sdk: docker.DockerClient,
) -> None:
    project = unique("vigilus-stack")
    containers = []
    network = sdk.networks.create(f"{project}_default", labels={"com.docker.compose.project": project})
    for service in ("web", "db"):
        labels = {
            "com.docker.compose.project": project,
            "com.docker.compose.service": service,
            "com.docker.compose.project.working_dir": f"/srv/{project}",
            "com.docker.compose.project.config_files": f"/srv/{project}/compose.yml",
        }
        containers.append(
            sdk.containers.run(
                docker_engine.image,
                ["sh", "-c", LOOPING.format(marker=service)],
                name=f"{project}-{service}-1",
                labels=labels,
                network_mode="none",
                detach=True,
            )
        )
    try:
        listed = ok("list_compose_projects").structured_content["projects"]
        (stack,) = [p for p in listed if p["name"] == project]
        assert stack["services"] == ["db", "web"] and stack["states"] == {"running": 2}
        assert stack["working_dir"] == f"/srv/{project}"
        assert stack["config_files"] == [f"/srv/{project}/compose.yml"]

        before = {c.name: sdk.containers.get(c.id).attrs["State"]["StartedAt"] for c in containers}
        restarted = ok("compose_restart", {"project": project, "timeout": 5}).structured_content
        assert sorted(restarted["done"]) == [f"restarted {project}-db-1", f"restarted {project}-web-1"]
        assert all(sdk.containers.get(c.id).attrs["State"]["StartedAt"] != before[c.name] for c in containers)

        containers[0].stop(timeout=5)
        up = ok("compose_up", {"project": project})
        assert up.structured_content["done"] == [f"started {project}-web-1"]
        assert "docker compose -p" in text_of(up)
        assert sdk.containers.get(containers[0].id).status == "running"

        down = ok("compose_down", {"project": project, "timeout": 5}).structured_content
        assert f"removed container {project}-web-1" in down["done"]
        assert f"removed network {project}_default" in down["done"]
        assert not sdk.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
        assert not sdk.networks.list(names=[network.name])
        assert f"no compose project named '{project}'" in failed("compose_down", {"project": project})
    finally:
        for container in sdk.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}):
            container.remove(force=True)
        for leftover in sdk.networks.list(names=[network.name]):
            leftover.remove()


def test_volumes_are_created_listed_and_removed(engine_endpoint: DockerEndpoint, sdk: docker.DockerClient) -> None:
    name = unique("vigilus-data")
    created = ok("create_volume", {"name": name, "labels": {"owner": "vigilus-test"}}).structured_content
    assert created["name"] == name and created["labels"] == {"owner": "vigilus-test"}
    assert sdk.volumes.get(name).attrs["Labels"] == {"owner": "vigilus-test"}
    listed = ok("list_volumes", {"name": name}).structured_content["volumes"]
    assert [v["name"] for v in listed] == [name]
    ok("remove_volume", {"name": name})
    assert name not in [v.name for v in sdk.volumes.list()]
    assert f"no volume named '{name}'" in failed("remove_volume", {"name": name})


def test_networks_are_created_listed_inspected_and_removed(
    engine_endpoint: DockerEndpoint, sdk: docker.DockerClient
) -> None:
    name = unique("vigilus-net")
    created = ok("create_network", {"name": name, "internal": True, "labels": {"owner": "vigilus-test"}})
    assert created.structured_content["name"] == name and created.structured_content["internal"] is True
    try:
        listed = ok("list_networks", {"name": name}).structured_content["networks"]
        assert [n["name"] for n in listed] == [name] and listed[0]["subnets"]
        details = ok("inspect_network", {"network": name}).structured_content
        assert details["labels"] == {"owner": "vigilus-test"} and details["containers"] == {}
        ok("remove_network", {"network": name})
        assert not sdk.networks.list(names=[name])
        assert f"no network named '{name}'" in failed("inspect_network", {"network": name})
    finally:
        for leftover in sdk.networks.list(names=[name]):
            leftover.remove()
