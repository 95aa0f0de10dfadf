"""The infrastructure inventory in the dashboard and the Django admin: pages for every logged-in person,
changes for admins only, write-only secrets (never in any page), form errors that keep what was typed, and
"test connection" for servers (against a real sshd, including the host-key confirm), Docker endpoints and
Wazuh instances."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEntry
from tests.fakes.wazuh import API_PASSWORD, API_USERNAME, FakeWazuh
from tests.infra import sshd
from tests.infra.docker_engine import PodmanEngine, docker_engine_fixture  # noqa: F401 - the fixture
from tools.inventory.services import add_server, save_credential
from tools.models import (
    Credential,
    CredentialKind,
    DockerEndpoint,
    ScanNetwork,
    Server,
    WazuhInstance,
    WireGuardClientConfig,
)

pytestmark = pytest.mark.django_db
real_sshd = [pytest.mark.integration, pytest.mark.engine_independent]

INVENTORY = "servers"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sshd.Farm]:
    yield from sshd.farm_fixture(tmp_path_factory.mktemp("inventory-sshd"), 1)


@pytest.fixture(autouse=True)
def _short_ssh_timeout(settings) -> None:
    settings.SSH_CONNECT_TIMEOUT = 3.0


def new_key(directory: Path, name: str = "id_ed25519", passphrase: str = "") -> str:
    return sshd.keygen(directory / name, passphrase=passphrase).read_text()


def key_body(key: str) -> list[str]:
    """The secret lines of a private key (what must never appear in a page)."""
    return [line for line in key.splitlines() if line and not line.startswith("-----")]


def page(client: Client, name: str = INVENTORY, *args: object) -> str:
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return response.content.decode()


def server_data(**overrides: object) -> dict:
    data = {
        "name": "nas",
        "address": "127.0.0.1",
        "port": "22",
        "tags": "Lab, storage",
        "notes": "the box under the stairs",
        "credential": "",
        "username": "root",
        "private_key": "",
        "passphrase": "",
        "password": "",
    }
    data.update(overrides)
    return data


def events(name: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(event=name).order_by("sequence"))


# --- Pages and permissions ----------------------------------------------------------------------------


def test_a_viewer_sees_every_part_of_the_inventory_but_no_change_controls(viewer_client, tmp_path) -> None:
    key = new_key(tmp_path)
    add_server(name="web1", address="10.0.0.5", port=2222, username="deploy", private_key=key, tags="prod")
    save_credential(name="shared", username="ops", password="hunter2-secret")
    DockerEndpoint.objects.create(name="local", url="unix:///var/run/docker.sock")
    WazuhInstance.objects.create(name="siem", api_url="https://wazuh:55000", username="wui", password="w-secret-1")
    ScanNetwork.objects.create(cidr="192.168.1.0/24", description="home LAN")
    WireGuardClientConfig.objects.create(interface="wg0", name="phone", public_key="PUBKEYphone=", config="x")

    html = page(viewer_client)

    for shown in (
        "deploy@10.0.0.5:2222",
        "prod",
        "not pinned",
        "never",
        "shared",
        "ops",
        "Password",
        "unix:///var/run/docker.sock",
        "https://wazuh:55000",
        "192.168.1.0/24",
        "home LAN",
        "PUBKEYphone=",
    ):
        assert shown in html, shown
    assert 'href="/tools/inventory/"' in html  # the "Servers" entry of the navigation
    server = Server.objects.get()
    for control in (
        reverse("inventory-server-create"),
        reverse("inventory-server-test", args=[server.pk]),
        reverse("inventory-server-edit", args=[server.pk]),
        reverse("inventory-credential-create"),
        reverse("inventory-docker-create"),
        reverse("inventory-wazuh-create"),
        reverse("inventory-network-create"),
        'type="submit" class="danger"',
    ):
        assert control not in html, control
    assert reverse("wireguard-config", args=[WireGuardClientConfig.objects.get().pk]) not in html
    for secret in (*key_body(key), "hunter2-secret", "w-secret-1"):
        assert secret not in html


def test_every_change_is_refused_for_a_viewer(viewer_client, tmp_path) -> None:
    server = add_server(name="web1", address="127.0.0.1", username="root", private_key=new_key(tmp_path))
    endpoint = DockerEndpoint.objects.create(name="local", url="unix:///nonexistent.sock")
    wazuh = WazuhInstance.objects.create(name="siem", api_url="http://127.0.0.1:9", username="u", password="p")
    network = ScanNetwork.objects.create(cidr="10.0.0.0/8")
    posts = [
        ("inventory-server-create", [], server_data(name="evil", password="x")),
        ("inventory-server-edit", [server.pk], server_data(name="web1", credential=server.credential_id)),
        ("inventory-server-remove", [server.pk], {}),
        ("inventory-server-test", [server.pk], {}),
        ("inventory-server-trust", [server.pk], {"fingerprint": "SHA256:abc"}),
        ("inventory-server-forget-key", [server.pk], {}),
        ("inventory-credential-create", [], {"name": "c", "username": "u", "password": "p"}),
        ("inventory-credential-edit", [server.credential_id], {"name": "c", "username": "u"}),
        ("inventory-credential-remove", [server.credential_id], {}),
        ("inventory-docker-create", [], {"name": "d", "url": "unix:///x.sock"}),
        ("inventory-docker-edit", [endpoint.pk], {"name": "d", "url": "unix:///x.sock"}),
        ("inventory-docker-remove", [endpoint.pk], {}),
        ("inventory-docker-test", [endpoint.pk], {}),
        ("inventory-wazuh-create", [], {"name": "w", "api_url": "http://x", "username": "u", "password": "p"}),
        ("inventory-wazuh-edit", [wazuh.pk], {"name": "w", "api_url": "http://x", "username": "u"}),
        ("inventory-wazuh-remove", [wazuh.pk], {}),
        ("inventory-wazuh-test", [wazuh.pk], {}),
        ("inventory-network-create", [], {"cidr": "10.1.0.0/16"}),
        ("inventory-network-edit", [network.pk], {"cidr": "10.1.0.0/16"}),
        ("inventory-network-remove", [network.pk], {}),
    ]
    for name, args, data in posts:
        url = reverse(name, args=args)
        assert viewer_client.post(url, data).status_code == 403, name
        if name.endswith(("-create", "-edit")):
            assert viewer_client.get(url).status_code == 403, name
    assert [s.name for s in Server.objects.all()] == ["web1"]
    assert Server.objects.get().last_tested_at is None
    assert DockerEndpoint.objects.get().url == "unix:///nonexistent.sock"
    assert list(ScanNetwork.objects.values_list("cidr", flat=True)) == ["10.0.0.0/8"]
    assert Credential.objects.count() == 1 and WazuhInstance.objects.count() == 1


# --- Servers and credentials ---------------------------------------------------------------------------


def test_adding_a_server_with_a_new_key_stores_it_encrypted_and_never_shows_it(admin_client, tmp_path) -> None:
    key = new_key(tmp_path)

    response = admin_client.post(reverse("inventory-server-create"), server_data(private_key=key))

    assert response.status_code == 302 and response.url == reverse(INVENTORY)
    server = Server.objects.select_related("credential").get(name="nas")
    assert (server.address, server.port, server.tags) == ("127.0.0.1", 22, ["lab", "storage"])
    assert server.credential.kind == CredentialKind.KEY and server.credential.private_key == key
    assert server.credential.username == "root" and not server.host_key
    assert [e.target for e in events("server.added")] == ["nas"]
    pages = [
        page(admin_client),
        page(admin_client, "inventory-server-edit", server.pk),
        page(admin_client, "inventory-credential-edit", server.credential_id),
        page(admin_client, "admin:tools_credential_change", server.credential_id),
    ]
    for html in pages:
        for line in key_body(key):
            assert line not in html
    assert "set (paste a new value to replace it)" in pages[2]


def test_a_bad_key_is_a_form_error_naming_the_problem_and_keeps_what_was_typed(admin_client, tmp_path) -> None:
    public_key = Path(sshd.keygen(tmp_path / "k").with_suffix(".pub")).read_text()
    locked = new_key(tmp_path, "locked", passphrase="open sesame")
    url = reverse("inventory-server-create")

    not_a_key = admin_client.post(url, server_data(private_key=public_key, address="nas.lan", tags="lab, nas"))
    no_passphrase = admin_client.post(url, server_data(private_key=locked))
    wrong_passphrase = admin_client.post(url, server_data(private_key=locked, passphrase="wrong"))

    html = not_a_key.content.decode()
    assert not_a_key.status_code == 200
    assert "not a private key" in html and "paste or type it again" in html
    assert 'value="nas.lan"' in html and 'value="lab, nas"' in html and 'value="root"' in html
    assert "the box under the stairs" in html
    assert public_key.split()[1] not in html  # what was pasted into the key box is not rendered back
    assert "encrypted: give its passphrase" in no_passphrase.content.decode()
    assert "wrong passphrase" in wrong_passphrase.content.decode()
    for line in key_body(locked):
        assert line not in no_passphrase.content.decode() and line not in wrong_passphrase.content.decode()
    assert not Server.objects.exists() and not Credential.objects.exists()


def test_a_password_credential_and_an_existing_shared_credential(admin_client) -> None:
    created = admin_client.post(
        reverse("inventory-server-create"), server_data(name="pi", username="pi", password="raspberry-Secret-7")
    )
    assert created.status_code == 302
    credential = Credential.objects.get(name="pi")
    assert credential.kind == CredentialKind.PASSWORD and credential.password == "raspberry-Secret-7"

    shared = admin_client.post(reverse("inventory-server-create"), server_data(name="pi2", credential=credential.pk))
    both = admin_client.post(
        reverse("inventory-server-create"), server_data(name="pi3", credential=credential.pk, password="other")
    )

    assert shared.status_code == 302
    assert Server.objects.get(name="pi2").credential == credential and Credential.objects.count() == 1
    assert "not both" in both.content.decode() and not Server.objects.filter(name="pi3").exists()
    html = page(admin_client)
    assert "pi, pi2" in html  # the credential's "used by"
    for url in (reverse(INVENTORY), reverse("inventory-server-edit", args=[Server.objects.get(name="pi").pk])):
        assert "raspberry-Secret-7" not in admin_client.get(url).content.decode()


def test_editing_keeps_stored_secrets_when_their_boxes_are_left_empty(admin_client, tmp_path) -> None:
    key = new_key(tmp_path)
    server = add_server(name="web1", address="10.0.0.5", username="deploy", private_key=key)
    credential = server.credential

    edited = admin_client.post(
        reverse("inventory-server-edit", args=[server.pk]),
        server_data(name="web1", address="10.0.0.6", tags="prod", credential=credential.pk),
    )
    renamed = admin_client.post(
        reverse("inventory-credential-edit", args=[credential.pk]), {"name": "web1", "username": "ops"}
    )

    assert edited.status_code == 302 and renamed.status_code == 302
    server.refresh_from_db()
    credential.refresh_from_db()
    assert (server.address, server.tags) == ("10.0.0.6", ["prod"])
    assert credential.username == "ops" and credential.private_key == key and credential.kind == CredentialKind.KEY
    assert [e.target for e in events("server.updated")] == ["web1"]

    switched = admin_client.post(
        reverse("inventory-credential-edit", args=[credential.pk]),
        {"name": "web1", "username": "ops", "password": "now-a-Password-1"},
    )
    assert switched.status_code == 302
    credential.refresh_from_db()
    assert credential.kind == CredentialKind.PASSWORD and credential.private_key == ""

    in_use = admin_client.post(reverse("inventory-credential-remove", args=[credential.pk]), follow=True)
    assert "is used by web1" in in_use.content.decode() and Credential.objects.filter(pk=credential.pk).exists()


def test_removing_a_server_removes_the_credential_made_for_it(admin_client, tmp_path) -> None:
    server = add_server(name="old", address="10.0.0.9", username="root", private_key=new_key(tmp_path))

    response = admin_client.post(reverse("inventory-server-remove", args=[server.pk]), follow=True)

    assert "Removed server old" in response.content.decode()
    assert not Server.objects.exists() and not Credential.objects.exists()
    assert [e.target for e in events("server.removed")] == ["old"]


@pytest.mark.parametrize("htmx", [True, False])
def test_a_connection_test_to_a_port_nobody_listens_on_shows_why_it_failed(admin_client, tmp_path, htmx: bool) -> None:
    port = sshd.free_port()
    server = add_server(name="down", address="127.0.0.1", port=port, username="root", private_key=new_key(tmp_path))

    response = admin_client.post(
        reverse("inventory-server-test", args=[server.pk]), **(HTMX if htmx else {}), follow=not htmx
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert ("Connection failed: " if htmx else "Failed") in html
    assert f"cannot connect to 127.0.0.1:{port}: connection refused" in html
    if htmx:
        assert html.lstrip().startswith(f'<tbody id="server-{server.pk}">')
    server.refresh_from_db()
    assert server.last_test_ok is False and "connection refused" in server.last_error
    assert [e.outcome for e in events("server.tested")] == ["failed"]


# --- Host-key trust against a real sshd ----------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.engine_independent
def test_first_contact_shows_the_fingerprint_and_the_confirm_pins_exactly_that_key(admin_client, farm) -> None:
    host = farm.hosts[0]
    server = add_server(
        name="lab", address="127.0.0.1", port=host.port, username="root", private_key=farm.client_key.read_text()
    )
    test_url = reverse("inventory-server-test", args=[server.pk])
    trust_url = reverse("inventory-server-trust", args=[server.pk])

    first = admin_client.post(test_url, **HTMX).content.decode()
    without_js = admin_client.post(test_url).content.decode()  # a decision to make: a page of its own

    for html in (first, without_js):
        assert host.fingerprint() in html and "Trust this host key" in html
        assert f'name="fingerprint" value="{host.fingerprint()}"' in html
    server.refresh_from_db()
    assert not server.host_key and not server.host_key_fingerprint

    other = "SHA256:" + "A" * 43
    refused = admin_client.post(trust_url, {"fingerprint": other}, **HTMX).content.decode()
    blank = admin_client.post(trust_url, {"fingerprint": ""}, **HTMX).content.decode()

    assert "nothing was pinned" in refused and other in refused and host.fingerprint() in refused
    assert "no fingerprint was confirmed" in blank
    server.refresh_from_db()
    assert not server.host_key and not events("server.host_key_pinned")

    trusted = admin_client.post(trust_url, {"fingerprint": host.fingerprint()}, **HTMX).content.decode()

    server.refresh_from_db()
    assert server.host_key_fingerprint == host.fingerprint() and server.host_key.startswith("ssh-ed25519 ")
    assert "Connection OK" in trusted and "pinned now" in trusted and "Debian" in trusted
    assert server.os_id == "debian" and server.last_test_ok is True
    assert [e.details.get("fingerprint") for e in events("server.host_key_pinned")] == [host.fingerprint()]
    listing = page(admin_client)
    assert host.fingerprint() in listing and "Debian" in listing


@pytest.mark.integration
@pytest.mark.engine_independent
def test_a_changed_host_key_is_refused_and_can_be_deliberately_forgotten(admin_client, farm) -> None:
    host = farm.hosts[0]
    server = add_server(
        name="moved", address="127.0.0.1", port=host.port, username="root", private_key=farm.client_key.read_text()
    )
    admin_client.post(reverse("inventory-server-trust", args=[server.pk]), {"fingerprint": host.fingerprint()})
    old = host.fingerprint()
    host.rekey()
    new = host.fingerprint()

    refused = admin_client.post(reverse("inventory-server-test", args=[server.pk]), **HTMX).content.decode()

    assert "has CHANGED" in refused and "refuses to connect" in refused
    assert re.search(rf"Pinned: <code>{re.escape(old)}</code>", refused)
    assert re.search(rf"Now offered: <code>{re.escape(new)}</code>", refused)
    assert "Forget pinned key" in refused and "Trust this host key" not in refused
    server.refresh_from_db()
    assert server.host_key_fingerprint == old and server.last_test_ok is False

    forgot = admin_client.post(reverse("inventory-server-forget-key", args=[server.pk]), follow=True)

    assert f"forgot the pinned host key {old}" in forgot.content.decode()
    server.refresh_from_db()
    assert not server.host_key and not server.host_key_fingerprint
    assert [e.target for e in events("server.host_key_forgotten")] == ["moved"]
    again = admin_client.post(reverse("inventory-server-test", args=[server.pk]), **HTMX).content.decode()
    assert new in again and "Trust this host key" in again


# --- Docker, Wazuh, scan networks, WireGuard ---------------------------------------------------------


def test_docker_endpoint_form_and_its_connection_test(admin_client) -> None:
    bad_url = admin_client.post(reverse("inventory-docker-create"), {"name": "far", "url": "docker.lan:2375"})
    key_without_cert = admin_client.post(
        reverse("inventory-docker-create"),
        {"name": "far", "url": "tcp://docker.lan:2376", "tls_verify": "on", "tls_client_key": "-----BEGIN KEY---"},
    )
    created = admin_client.post(
        reverse("inventory-docker-create"),
        {"name": "gone", "url": "unix:///nonexistent/docker.sock", "is_default": "on"},
    )

    assert "Use unix://, tcp://, ssh://" in bad_url.content.decode()
    assert "A client key needs its certificate" in key_without_cert.content.decode()
    assert created.status_code == 302
    endpoint = DockerEndpoint.objects.get()
    assert endpoint.name == "gone" and endpoint.is_default
    assert [e.target for e in events("docker_endpoint.saved")] == ["gone"]

    result = admin_client.post(reverse("inventory-docker-test", args=[endpoint.pk]), **HTMX).content.decode()

    assert f'id="docker-test-{endpoint.pk}"' in result and "Connection failed" in result
    assert "no Docker engine at unix:///nonexistent/docker.sock" in result and "socket does not exist" in result
    assert [e.outcome for e in events("docker_endpoint.tested")] == ["failed"]


@pytest.mark.integration
@pytest.mark.engine_independent
def test_a_docker_endpoint_test_shows_the_engine_version(admin_client, docker_engine: PodmanEngine) -> None:
    endpoint = DockerEndpoint.objects.create(name="podman", url=docker_engine.url)

    response = admin_client.post(reverse("inventory-docker-test", args=[endpoint.pk]), follow=True)

    html = response.content.decode()
    client = docker_engine.client()
    try:
        version = client.version()["Version"]
    finally:
        client.close()
    assert f"podman: engine {version} (API " in html and f"at {docker_engine.url}" in html
    assert [e.outcome for e in events("docker_endpoint.tested")] == ["succeeded"]


def test_wazuh_form_keeps_the_password_write_only_and_tests_the_login(admin_client) -> None:
    with FakeWazuh() as wazuh:
        data = {"name": "siem", "api_url": wazuh.api_url, "username": API_USERNAME, "verify_tls": "on"}
        missing = admin_client.post(reverse("inventory-wazuh-create"), data)
        created = admin_client.post(reverse("inventory-wazuh-create"), {**data, "password": API_PASSWORD})
        instance = WazuhInstance.objects.get()
        edited = admin_client.post(reverse("inventory-wazuh-edit", args=[instance.pk]), {**data, "username": "x"})
        test_url = reverse("inventory-wazuh-test", args=[instance.pk])

        rejected = admin_client.post(test_url, **HTMX).content.decode()
        WazuhInstance.objects.filter(pk=instance.pk).update(username=API_USERNAME)
        accepted = admin_client.post(test_url, follow=True).content.decode()

    assert "needs the user&#x27;s password" in missing.content.decode()
    assert created.status_code == 302 and edited.status_code == 302
    instance.refresh_from_db()
    assert instance.password == API_PASSWORD  # the empty box on edit kept it
    assert "rejected the credentials for user &#x27;x&#x27;" in rejected
    assert "logged in to the Wazuh API" in accepted
    for html in (rejected, accepted, page(admin_client, "inventory-wazuh-edit", instance.pk), page(admin_client)):
        assert API_PASSWORD not in html
    assert [e.target for e in events("wazuh.saved")] == ["siem", "siem"]


def test_scan_networks_are_validated_and_normalised(admin_client) -> None:
    url = reverse("inventory-network-create")
    bad = admin_client.post(url, {"cidr": "192.168.1.300/24", "description": "home"})
    everything = admin_client.post(url, {"cidr": "0.0.0.0/0"})
    good = admin_client.post(url, {"cidr": "192.168.1.7/24", "description": "home"})

    assert "Not a network" in bad.content.decode() and 'value="home"' in bad.content.decode()
    assert "allows every address" in everything.content.decode()
    assert good.status_code == 302
    assert list(ScanNetwork.objects.values_list("cidr", flat=True)) == ["192.168.1.0/24"]
    assert [e.target for e in events("scan_network.saved")] == ["192.168.1.0/24"]
    network = ScanNetwork.objects.get()
    admin_client.post(reverse("inventory-network-remove", args=[network.pk]))
    assert not ScanNetwork.objects.exists() and [e.target for e in events("scan_network.removed")] == ["192.168.1.0/24"]


def test_wireguard_configs_download_for_admins_only_and_never_show_the_private_key(admin_client, viewer_client) -> None:
    private_key = "cGhvbmUtcHJpdmF0ZS1rZXktZm9yLXRlc3RzLW9ubHk="
    entry = WireGuardClientConfig.objects.create(
        interface="wg0",
        name="phone",
        public_key="UHVibGljS2V5UGhvbmU=",
        config=f"[Interface]\nPrivateKey = {private_key}\nAddress = 10.8.0.2/32\n",
    )
    download = reverse("wireguard-config", args=[entry.pk])

    listing = page(admin_client)
    response = admin_client.get(download)

    assert download in listing and "UHVibGljS2V5UGhvbmU=" in listing and private_key not in listing
    assert response.status_code == 200 and private_key in response.content.decode()
    assert viewer_client.get(download).status_code == 403
    admin_page = page(admin_client, "admin:tools_wireguardclientconfig_change", entry.pk)
    assert "UHVibGljS2V5UGhvbmU=" in admin_page and private_key not in admin_page


def test_the_admin_checks_a_credential_key_and_keeps_it_write_only(admin_client, tmp_path) -> None:
    key = new_key(tmp_path)
    add_url = reverse("admin:tools_credential_add")

    bad = admin_client.post(add_url, {"name": "ops", "username": "ops", "private_key": "not a key"})
    good = admin_client.post(add_url, {"name": "ops", "username": "ops", "private_key": key})

    assert "not a private key" in bad.content.decode()
    assert good.status_code == 302
    credential = Credential.objects.get()
    assert credential.private_key == key and credential.kind == CredentialKind.KEY
    kept = admin_client.post(
        reverse("admin:tools_credential_change", args=[credential.pk]), {"name": "ops", "username": "ops2"}
    )
    assert kept.status_code == 302
    credential.refresh_from_db()
    assert credential.username == "ops2" and credential.private_key == key
    assert [e.actor for e in events("credential.saved")] == ["alice", "alice"]


def test_the_admin_forgets_a_pinned_key_and_never_shows_secrets(admin_client, tmp_path) -> None:
    key = new_key(tmp_path)
    server = add_server(name="pinned", address="10.0.0.7", username="root", private_key=key)
    Server.objects.filter(pk=server.pk).update(host_key="ssh-ed25519 AAAA", host_key_fingerprint="SHA256:old")

    response = admin_client.post(
        reverse("admin:tools_server_changelist"),
        {"action": "forget_pinned_key", "_selected_action": [server.pk]},
        follow=True,
    )

    assert response.status_code == 200
    server.refresh_from_db()
    assert not server.host_key and not server.host_key_fingerprint
    assert [e.details.get("fingerprint") for e in events("server.host_key_forgotten")] == ["SHA256:old"]
    for name, pk in (("admin:tools_server_change", server.pk), ("admin:tools_credential_change", server.credential_id)):
        html = page(admin_client, name, pk)
        for line in key_body(key):
            assert line not in html


def test_admin_saves_and_removals_are_audited_like_the_dashboards(admin_client) -> None:
    old = DockerEndpoint.objects.create(name="old", url="unix:///run/old.sock", is_default=True)
    added = admin_client.post(
        reverse("admin:tools_dockerendpoint_add"),
        {"name": "lab", "url": "tcp://10.0.0.5:2376", "tls_verify": "on", "is_default": "on"},
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    assert DockerEndpoint.objects.get(name="lab").is_default and not DockerEndpoint.objects.get(pk=old.pk).is_default
    (saved,) = events("docker_endpoint.saved")
    assert saved.target == "lab" and saved.details == {"created": True, "via": "admin"}

    network = ScanNetwork.objects.create(cidr="10.9.0.0/24")
    removed = admin_client.post(reverse("admin:tools_scannetwork_delete", args=[network.pk]), {"post": "yes"})
    assert removed.status_code == 302 and not ScanNetwork.objects.filter(pk=network.pk).exists()
    assert [(e.target, e.details) for e in events("scan_network.removed")] == [("10.9.0.0/24", {"via": "admin"})]
