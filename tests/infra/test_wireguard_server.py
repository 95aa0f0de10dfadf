"""The `wireguard` built-in server against the real `wg`, `ip` and wireguard-go: the server runs over stdio
inside network namespace A (`ip netns exec A manage.py mcp_serve wireguard`), and a client in namespace B
uses the configuration it generated to reach A through the tunnel."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from django.db import connection
from django.urls import reverse
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult

from tests.conftest import ROOT, process_env
from tests.infra.netns import (
    TUNNEL_NETWORK,
    WireGuardPair,
    apply_client_config,
    ping,
    stop_daemonized_wireguard_go,
    wireguard_pair,
)
from tests.infra.requires import require_program
from tools.choices import Intent
from tools.models import WireGuardClientConfig
from tools.servers.registry import build_builtin_server
from tools.servers.wireguard import WG_QUICK_CONFIG_DIR, call_intent

pytestmark = [pytest.mark.integration, pytest.mark.engine_independent]

T = TypeVar("T")


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def everything_in(result: CallToolResult) -> str:
    """All the model receives: the text and the structured content."""
    return text_of(result) + json.dumps(result.structured_content)


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    return result.structured_content


@pytest.fixture(scope="module")
def pair() -> Iterator[WireGuardPair]:
    for program, package in [("wg", "wireguard-tools"), ("wg-quick", "wireguard-tools"), ("ip", "iproute2")]:
        require_program(program, package)
    require_program("wireguard-go", "wireguard-go")
    with wireguard_pair() as created:
        yield created


def in_namespace_a(pair: WireGuardPair, steps: Callable[[Client], Awaitable[T]]) -> T:
    """Run `steps` against the wireguard server serving over stdio inside namespace A."""
    params = StdioServerParameters(
        command=require_program("ip", "iproute2"),
        args=["netns", "exec", pair.a.name, sys.executable, "manage.py", "mcp_serve", "wireguard"],
        cwd=str(ROOT),
        env=process_env(),
    )

    async def go() -> T:
        async with Client(params) as client:
            return await steps(client)

    return anyio.run(go)


def in_process(steps: Callable[[Client], Awaitable[T]]) -> T:
    async def go() -> T:
        async with Client(build_builtin_server("wireguard")) as client:
            return await steps(client)

    return anyio.run(go)


def wg(*argv: str, stdin: str | None = None) -> str:
    return subprocess.run(["wg", *argv], input=stdin, capture_output=True, text=True, check=True).stdout.strip()


def public_key() -> str:
    """The public key of a new key pair (the private key is thrown away)."""
    return wg("pubkey", stdin=wg("genkey"))


def peers_of(interface: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {peer["public_key"]: peer for peer in interface["peers"]}


# --- Reading and changing peers inside namespace A ---------------------------------------------------------


def test_interfaces_and_peers_are_shown_without_private_or_preshared_keys(pair: WireGuardPair) -> None:
    a = pair.a
    static_key, other_key = public_key(), public_key()
    psk = wg("genpsk")
    a.run("wg", "set", a.wg, "peer", static_key, "preshared-key", "/dev/stdin", "allowed-ips", "10.202.0.40/32",
          stdin=psk + "\n")  # fmt: skip

    async def steps(client: Client) -> dict[str, CallToolResult]:
        return {
            "list": await client.call_tool("list_interfaces", {}),
            "show": await client.call_tool("show_interface", {"interface": a.wg}),
            "add": await client.call_tool(
                "add_peer",
                {
                    "interface": a.wg,
                    "public_key": other_key,
                    "allowed_ips": ["10.202.0.50"],
                    "endpoint": "10.201.0.9:51820",
                    "persistent_keepalive": 25,
                },
            ),
            "taken": await client.call_tool(
                "add_peer", {"interface": a.wg, "public_key": static_key, "allowed_ips": ["10.202.0.50/32"]}
            ),
            "after_add": await client.call_tool("show_interface", {"interface": a.wg}),
            "remove": await client.call_tool("remove_peer", {"interface": a.wg, "public_key": other_key}),
            "remove_again": await client.call_tool("remove_peer", {"interface": a.wg, "public_key": other_key}),
            "after_remove": await client.call_tool("show_interface", {"interface": a.wg}),
            "loopback": await client.call_tool("show_interface", {"interface": "lo"}),
            "elsewhere": await client.call_tool("show_interface", {"interface": pair.b.wg}),
        }

    try:
        results = in_namespace_a(pair, steps)
    finally:
        a.run("wg", "set", a.wg, "peer", static_key, "remove", check=False)

    for result in results.values():
        assert pair.a_private_key not in everything_in(result)
        assert psk not in everything_in(result)

    # Only the interface of namespace A, although wg also sees B's userspace socket.
    (interface,) = ok(results["list"])["interfaces"]
    assert interface["name"] == a.wg
    assert interface["public_key"] == pair.a_public_key
    assert interface["listen_port"] == pair.listen_port
    assert interface["up"] is False
    assert interface["addresses"] == [f"{TUNNEL_NETWORK}.1/24"]
    static = peers_of(interface)[static_key]
    assert static["has_preshared_key"] is True
    assert static["allowed_ips"] == ["10.202.0.40/32"]
    assert static["latest_handshake"] is None
    assert ok(results["show"]) == interface

    added = ok(results["add"])
    assert added["action"] == "added"
    assert added["peer"]["allowed_ips"] == ["10.202.0.50/32"]
    assert added["peer"]["endpoint"] == "10.201.0.9:51820"
    assert added["peer"]["persistent_keepalive"] == 25
    assert peers_of(ok(results["after_add"]))[other_key]["has_preshared_key"] is False

    assert results["taken"].is_error
    assert f"10.202.0.50/32 overlaps 10.202.0.50/32, already routed to peer {other_key}" in text_of(results["taken"])

    assert ok(results["remove"])["action"] == "removed"
    assert results["remove_again"].is_error and f"has no peer {other_key}" in text_of(results["remove_again"])
    assert set(peers_of(ok(results["after_remove"]))) == {static_key}

    assert results["loopback"].is_error and "lo is not a WireGuard interface" in text_of(results["loopback"])
    assert results["elsewhere"].is_error
    assert f"there is no interface {pair.b.wg}" in text_of(results["elsewhere"])


@pytest.mark.django_db(transaction=True)
def test_a_generated_client_config_connects_through_the_tunnel(pair: WireGuardPair, tmp_path: Path) -> None:
    if connection.vendor != "sqlite":  # 127.0.0.1 inside namespace A is A's own loopback: no PostgreSQL there
        pytest.skip("the server in namespace A reaches the test database only as an SQLite file (SQLite pass)")
    a, b = pair.a, pair.b

    def client_installs_its_download(config_id: int) -> str:
        """As the person would: take the stored configuration and set up B's interface with it."""
        try:
            config = WireGuardClientConfig.objects.get(pk=config_id).config
        finally:
            connection.close()  # this worker thread's own connection
        apply_client_config(b, config, tmp_path)
        return config

    async def story(client: Client) -> dict[str, Any]:
        """One server session: generate, (the client installs it), up, ping, down, ping, remove."""
        steps: dict[str, Any] = {
            "generated": await client.call_tool(
                "generate_client_config",
                {
                    "interface": a.wg,
                    "client_address": f"{TUNNEL_NETWORK}.2/24",
                    "allowed_ips": [f"{TUNNEL_NETWORK}.0/24"],
                    "endpoint": a.veth_address,  # the port defaults to the interface's listen port
                    "dns": ["10.202.0.1"],
                    "name": "laptop",
                },
            )
        }
        data = ok(steps["generated"])
        await anyio.to_thread.run_sync(client_installs_its_download, data["config_id"])
        steps["up"] = await client.call_tool("interface_up", {"interface": a.wg})
        steps["ping_up"] = await anyio.to_thread.run_sync(lambda: ping(b, pair.a_tunnel_address, attempts=3))
        steps["listed"] = await client.call_tool("list_interfaces", {})
        steps["down"] = await client.call_tool("interface_down", {"interface": a.wg})
        steps["ping_down"] = await anyio.to_thread.run_sync(lambda: ping(b, pair.a_tunnel_address))
        steps["remove"] = await client.call_tool("remove_peer", {"interface": a.wg, "public_key": data["public_key"]})
        steps["after"] = await client.call_tool("show_interface", {"interface": a.wg})
        return steps

    try:
        steps = in_namespace_a(pair, story)
    finally:
        a.run("ip", "link", "set", a.wg, "down", check=False)  # as the other tests expect it
    data = ok(steps["generated"])

    row = WireGuardClientConfig.objects.get(pk=data["config_id"])
    assert row.interface == a.wg and row.name == "laptop" and row.public_key == data["public_key"]
    (private_line,) = [line for line in row.config.splitlines() if line.startswith("PrivateKey")]
    (psk_line,) = [line for line in row.config.splitlines() if line.startswith("PresharedKey")]
    client_private = private_line.split("=", 1)[1].strip()
    client_psk = psk_line.split("=", 1)[1].strip()
    assert f"PublicKey = {pair.a_public_key}" in row.config
    assert f"Endpoint = {a.veth_address}:{pair.listen_port}" in row.config
    assert "DNS = 10.202.0.1" in row.config
    assert b.run("wg", "show", b.wg, "private-key").stdout.strip() == client_private
    assert wg("pubkey", stdin=client_private) == data["public_key"]

    # The model gets the public key and a link; the private and preshared keys only live in the encrypted row.
    assert data["download_url"].endswith(reverse("wireguard-config", args=[row.pk]))
    assert data["download_url"] in data["note"]
    assert data["peer_allowed_ips"] == [f"{TUNNEL_NETWORK}.2/32"]
    assert data["preshared_key"] is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT config FROM tools_wireguardclientconfig WHERE id = %s", [row.pk])
        (stored,) = cursor.fetchone()
    assert client_private not in stored and "PrivateKey" not in stored
    for result in steps.values():
        if isinstance(result, CallToolResult):
            for secret in (client_private, client_psk, pair.a_private_key):
                assert secret not in everything_in(result)

    up = ok(steps["up"])
    assert up["action"] == "set up" and up["command"] == f"ip link set dev {a.wg} up"
    assert up["state"]["up"] is True
    assert steps["ping_up"], "no answer from A through the tunnel after interface_up"

    (interface,) = ok(steps["listed"])["interfaces"]
    client_peer = peers_of(interface)[data["public_key"]]
    assert client_peer["latest_handshake"] is not None
    assert client_peer["received_bytes"] > 0 and client_peer["sent_bytes"] > 0
    assert client_peer["endpoint"] == f"{b.veth_address}:{b.run('wg', 'show', b.wg, 'listen-port').stdout.strip()}"

    assert ok(steps["down"])["state"]["up"] is False
    assert not steps["ping_down"], "A still answered through the tunnel after interface_down"
    assert data["public_key"] not in peers_of(ok(steps["after"]))


def test_a_missing_interface_is_started_with_wg_quick_from_its_configuration(pair: WireGuardPair) -> None:
    require_program("wg-quick", "wireguard-tools")
    name = f"wgq{pair.a.wg[3:]}"
    config = WG_QUICK_CONFIG_DIR / f"{name}.conf"
    WG_QUICK_CONFIG_DIR.mkdir(mode=0o700, exist_ok=True)
    private_key = wg("genkey")
    config.write_text(f"[Interface]\nPrivateKey = {private_key}\nAddress = 10.203.0.1/24\nListenPort = 51821\n")
    config.chmod(0o600)

    async def steps(client: Client) -> tuple[CallToolResult, CallToolResult]:
        return (
            await client.call_tool("interface_up", {"interface": name}),
            await client.call_tool("interface_up", {"interface": "wgnothing"}),
        )

    try:
        started, missing = in_namespace_a(pair, steps)
    finally:
        pair.a.run("ip", "link", "delete", name, check=False)
        stop_daemonized_wireguard_go(name)
        config.unlink()
    data = ok(started)
    assert data["action"] == f"started from {config}"
    assert data["command"] == f"wg-quick up {name}"
    assert data["state"]["up"] is True
    assert data["state"]["listen_port"] == 51821
    assert data["state"]["addresses"] == ["10.203.0.1/24"]
    assert data["state"]["public_key"] == wg("pubkey", stdin=private_key)
    assert private_key not in everything_in(started)
    assert missing.is_error
    assert f"no interface wgnothing on this host and no {WG_QUICK_CONFIG_DIR}/wgnothing.conf" in text_of(missing)


# --- In process: checks before anything runs, a missing wg, intent -----------------------------------------


def test_bad_keys_networks_and_interface_names_are_refused() -> None:
    key = "x" * 43 + "="

    async def steps(client: Client) -> list[CallToolResult]:
        return [
            await client.call_tool("add_peer", {"interface": "wg0", "public_key": key, "allowed_ips": ["10.0.0.2/32"]}),
            await client.call_tool(
                "add_peer",
                {"interface": "wg0", "public_key": "A" * 43 + "=", "allowed_ips": ["10.0.0.300/32"]},
            ),
            await client.call_tool(
                "add_peer",
                {"interface": "wg0", "public_key": "A" * 43 + "=", "allowed_ips": ["10.0.0.2/32"], "endpoint": "-x"},
            ),
            await client.call_tool("show_interface", {"interface": "-h"}),
            await client.call_tool("interface_up", {"interface": "averyveryverylongname"}),
        ]

    bad_key, bad_network, bad_endpoint, option, too_long = in_process(steps)
    assert bad_key.is_error and "is not a WireGuard public key" in text_of(bad_key)
    assert bad_network.is_error and "'10.0.0.300/32' is not an address or network" in text_of(bad_network)
    assert bad_endpoint.is_error and "is not host:port" in text_of(bad_endpoint)
    assert option.is_error and "pattern" in text_of(option)
    assert too_long.is_error and "pattern" in text_of(too_long)


def test_tools_are_listed_without_wg_and_a_call_names_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no wg anywhere

    async def steps(client: Client) -> tuple[Any, CallToolResult]:
        return await client.list_tools(), await client.call_tool("list_interfaces", {})

    listed, result = in_process(steps)
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == {
        "list_interfaces",
        "show_interface",
        "add_peer",
        "remove_peer",
        "generate_client_config",
        "interface_up",
        "interface_down",
    }
    assert tools["list_interfaces"].annotations.read_only_hint is True
    assert tools["add_peer"].annotations.read_only_hint is False
    assert tools["interface_up"].annotations.destructive_hint is True
    assert "elevate" in tools["interface_down"].description.lower()
    assert result.is_error
    assert "wg is not installed" in text_of(result) and "wireguard-tools" in text_of(result)


def test_bringing_an_interface_up_or_down_is_elevate_and_the_rest_keeps_its_annotation() -> None:
    intent, reason = call_intent("interface_up", {"interface": "wg0"})
    assert intent == Intent.ELEVATE and "wg0" in reason
    assert call_intent("interface_down", {"interface": "wg0"})[0] == Intent.ELEVATE
    for tool in ("list_interfaces", "show_interface", "add_peer", "remove_peer", "generate_client_config"):
        assert call_intent(tool, {"interface": "wg0"}) is None
