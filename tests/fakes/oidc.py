"""A real OpenID provider for the single sign-on tests: the npm package `oidc-provider` (the certified Node
implementation) run by node on 127.0.0.1, with the clients and people each test gives it (oidc_provider.mjs).

The package is installed once into the tests' npm cache (`VIGILUS_TEST_MCP_CACHE`, default
`/tmp/vigilus-test-mcp-cache`, as tests/tools/third_party.py installs npm servers): `npm install --prefix DIR
oidc-provider@VERSION`, pinned. Without node and npm the tests that need it skip, naming what to install (under
CI=true a skip is a failure).

`sign_in_at_provider()` walks the provider's sign-in pages with plain HTTP, for tests that drive the redirect flow
without a browser.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from tests.ports import free_port

PACKAGE, VERSION = "oidc-provider", "9.13.3"  # pinned: the newest release when these tests were written
CACHE_ROOT = Path(os.environ.get("VIGILUS_TEST_MCP_CACHE") or Path(tempfile.gettempdir()) / "vigilus-test-mcp-cache")
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
INSTALL_TIMEOUT = 600
HINT = "Install Node.js 20+ with npm (e.g. `apt-get install nodejs npm`) and allow access to registry.npmjs.org."


class ProviderUnavailable(RuntimeError):
    """node or npm is missing, or the package could not be installed (the message says what to do)."""


def installed_modules() -> Path:
    """The node_modules folder holding oidc-provider, installed on first use (one installer at a time)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise ProviderUnavailable(f"node and npm are needed to run {PACKAGE}. {HINT}")
    folder = CACHE_ROOT / f"npm-{PACKAGE}-{VERSION}"
    marker = folder / ".vigilus-installed"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            argv = [npm, "install", "--prefix", str(folder), f"{PACKAGE}@{VERSION}", "--no-audit", "--no-fund"]
            try:
                done = subprocess.run(
                    [*argv, "--loglevel=error"], capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ProviderUnavailable(f"cannot install {PACKAGE}@{VERSION}: {exc}. {HINT}") from None
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip()[-1500:]
                raise ProviderUnavailable(f"`{' '.join(argv)}` exited {done.returncode}: {tail}. {HINT}")
            marker.write_text("complete\n")
    return folder / "node_modules"


@dataclass
class Person:
    password: str
    claims: dict[str, Any] = field(default_factory=dict)


@dataclass
class Client:
    """One relying party registered at the provider (a confidential web client using the code flow)."""

    client_id: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def metadata(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
            "post_logout_redirect_uris": self.post_logout_redirect_uris,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }


class OidcProvider:
    """oidc-provider on 127.0.0.1 (a port of its own), started by `start()` and ended by `stop()`."""

    def __init__(self, folder: Path, clients: list[Client], people: dict[str, Person], *, end_session: bool = True):
        self.folder, self.clients, self.end_session = folder, clients, end_session
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.users_file = folder / "users.json"
        self.log = folder / "provider.log"
        self.process: subprocess.Popen | None = None
        self.set_people(people)

    def set_people(self, people: dict[str, Person]) -> None:
        """Who may sign in, and their claims (read again at each sign-in)."""
        body = {name: {"password": p.password, "claims": p.claims} for name, p in people.items()}
        tmp = self.users_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(self.users_file)

    def client(self, client_id: str) -> Client:
        return next(c for c in self.clients if c.client_id == client_id)

    def start(self) -> OidcProvider:
        modules = installed_modules()
        config = self.folder / "provider.json"
        config.write_text(
            json.dumps(
                {
                    "modules": str(modules),
                    "port": self.port,
                    "usersFile": str(self.users_file),
                    "clients": [c.metadata() for c in self.clients],
                    "endSession": self.end_session,
                }
            )
        )
        self.process = subprocess.Popen(
            [shutil.which("node") or "node", str(SCRIPT), str(config)],
            stdout=subprocess.PIPE,
            stderr=open(self.log, "wb"),  # noqa: SIM115 - the child holds it; closed with the process
            text=True,
        )
        ready = threading.Event()
        seen: list[str] = []

        def read() -> None:
            for line in self.process.stdout:
                seen.append(line)
                if line.startswith("ready "):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30) or self.process.poll() is not None:
            self.stop()
            raise AssertionError(f"{PACKAGE} did not start: {''.join(seen)} {self.log.read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def discovery(self) -> dict[str, Any]:
        return requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5).json()


@contextmanager
def running_provider(
    clients: list[Client], people: dict[str, Person], *, end_session: bool = True
) -> Iterator[OidcProvider]:
    folder = Path(tempfile.mkdtemp(prefix="vigilus-oidc-"))
    provider = OidcProvider(folder, clients, people, end_session=end_session)
    try:
        yield provider.start()
    finally:
        provider.stop()
        shutil.rmtree(folder, ignore_errors=True)


def sign_in_at_provider(http: requests.Session, authorize_url: str, username: str, password: str) -> str:
    """Follow an authorization request through the provider's sign-in page as a browser would; returns the URL the
    provider sends the browser back to (the relying party's redirect URI with `code` and `state`, or `error`)."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    url, method, data = authorize_url, "GET", None
    for _ in range(12):
        answer = http.request(method, url, data=data, allow_redirects=False, timeout=10)
        if answer.status_code in (302, 303) and answer.headers["Location"]:
            url, method, data = urljoin(url, answer.headers["Location"]), "GET", None
            if not url.startswith(origin + "/"):
                return url
            continue
        if answer.status_code == 200 and 'name="password"' in answer.text:
            url, method = f"{url.rstrip('/')}/login", "POST"
            data = {"username": username, "password": password}
            continue
        raise AssertionError(f"unexpected answer from the provider at {url}: {answer.status_code} {answer.text[:500]}")
    raise AssertionError("the provider kept redirecting")
