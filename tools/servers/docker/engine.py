"""Which Docker engine a call talks to, and the clients kept for each endpoint (rebuilt when its row changes),
with their private TLS files."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.tls import TLSConfig
from mcp.server.mcpserver.exceptions import ToolError

from tools.servers.common import Refused
from vigilus.redaction import display_url

logger = logging.getLogger("vigilus.tools.servers.docker")

LOCAL_SOCKET = "unix:///var/run/docker.sock"
CLIENT_TIMEOUT = 60  # seconds for one API request (stop/restart add their own grace period)
DEFAULT_STOP_TIMEOUT = 10
MAX_WAIT = 600.0
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_WORKING_DIR = "com.docker.compose.project.working_dir"
COMPOSE_CONFIG_FILES = "com.docker.compose.project.config_files"


# --- Endpoints and clients ------------------------------------------------------------------------


@dataclass
class Engine:
    """A connected engine: the client, and how to name it in messages."""

    label: str  # "endpoint 'lab' (tcp://...)" or "the local engine (unix://...)"
    url: str
    client: docker.DockerClient
    key: tuple[Any, ...]
    tls_dir: Path | None = None

    def close(self) -> None:
        with suppress(Exception):
            self.client.close()
        if self.tls_dir is not None:
            shutil.rmtree(self.tls_dir, ignore_errors=True)


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def endpoint_row(name: str | None) -> Any:
    """The DockerEndpoint to use, or None for the local engine; a ToolError when the choice is unclear."""
    from tools.models import DockerEndpoint

    if name:
        row = DockerEndpoint.objects.filter(name=name).first()
        if row is None:
            known = ", ".join(DockerEndpoint.objects.values_list("name", flat=True)) or "none is configured"
            raise Refused(f"no Docker endpoint named {name!r} (configured endpoints: {known})")
        return row
    default = DockerEndpoint.objects.filter(is_default=True).order_by("name").first()
    if default is not None:
        return default
    rows = list(DockerEndpoint.objects.order_by("name")[:10])
    if len(rows) == 1:
        return rows[0]
    if rows:
        names = ", ".join(row.name for row in rows)
        raise Refused(
            f"several Docker endpoints are configured ({names}) and none is the default: name one with `endpoint`"
        )
    return None


def local_url() -> str:
    """Where the local engine is looked for when no endpoint is configured (what the Docker CLI would use)."""
    return os.environ.get("DOCKER_HOST") or LOCAL_SOCKET


def _why_unreachable(exc: Any) -> str:
    """The cause of a failed connection in words, instead of the nested exception reprs requests gives."""
    text = str(exc).removeprefix("Error while fetching server API version: ")
    if "FileNotFoundError" in text or "No such file or directory" in text:
        return "the socket does not exist"
    if "PermissionError" in text or "Permission denied" in text:
        return "permission denied on the socket (the Vigilus user may need to be in the docker group)"
    if "Connection refused" in text or "ConnectionRefusedError" in text:
        return "connection refused"
    return text


def _unreachable(label: str, url: str, reason: Any, *, configured: bool) -> ToolError:
    reason = _why_unreachable(reason)
    hint = (
        "check the endpoint in the dashboard (Infrastructure) or start the engine"
        if configured
        else "configure a Docker endpoint in the dashboard (Infrastructure) or start the engine"
    )
    return ToolError(f"no Docker engine at {display_url(url)} ({label}): {reason}; {hint}")


def _engine_for(endpoint: str | None) -> Engine:
    """The cached engine for `endpoint` (see the module docstring), connecting when needed."""
    row = endpoint_row(endpoint)
    if row is None:
        url = local_url()
        cache_name = ""
        key: tuple[Any, ...] = ("env", url, os.environ.get("DOCKER_TLS_VERIFY"), os.environ.get("DOCKER_CERT_PATH"))
        label = "the local engine"
    else:
        url = row.url
        cache_name = row.name
        key = ("row", row.pk, row.updated_at, row.url)
        label = f"endpoint {row.name!r}"
    with _engines_lock:
        cached = _engines.get(cache_name)
        if cached is not None and cached.key == key:
            return cached
    engine = _connect(row, url=url, label=label, key=key)
    with _engines_lock:
        previous = _engines.get(cache_name)
        if previous is not None and previous.key == key:  # another call connected first: use theirs
            engine, spare = previous, engine
        else:
            _engines[cache_name] = engine
            spare = previous  # the endpoint changed: its old client goes
    if spare is not None:
        spare.close()
    return engine


def _connect(row: Any, *, url: str, label: str, key: tuple[Any, ...]) -> Engine:
    """A new client (which asks the engine for its API version, so an absent engine fails here)."""
    tls_dir = None
    try:
        if row is None:
            client = docker.from_env(timeout=CLIENT_TIMEOUT)
        else:
            tls, tls_dir = _tls_config(row)
            client = docker.DockerClient(base_url=row.url, tls=tls, timeout=CLIENT_TIMEOUT, use_ssh_client=False)
    except docker.errors.TLSParameterError as exc:
        _remove(tls_dir)
        raise ToolError(f"the TLS settings of {label} are not usable: {exc}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        _remove(tls_dir)
        raise _unreachable(label, url, exc, configured=row is not None) from None
    return Engine(label=label, url=url, client=client, key=key, tls_dir=tls_dir)


def engine_version(row: Any) -> str:
    """Connect afresh to the endpoint `row` (nothing cached) and describe the engine that answers, for a
    connection test; a ToolError says why none did."""
    engine = _connect(row, url=row.url, label=f"endpoint {row.name!r}", key=("check", row.pk))
    try:
        with _docker_errors(engine):
            info = engine.client.version()
    finally:
        engine.close()
    platform = (info.get("Platform") or {}).get("Name")
    return (
        f"engine {info.get('Version', '?')} (API {info.get('ApiVersion', '?')}, {info.get('Os', '?')}/"
        f"{info.get('Arch', '?')}{', ' + platform if platform else ''}) at {display_url(row.url)}"
    )


def _remove(directory: Path | None) -> None:
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def _tls_config(row: Any) -> tuple[TLSConfig | None, Path | None]:
    """TLS for tcp:// and https:// endpoints that have certificates (or are https://): the PEM fields are
    written to a private directory (0700, files 0600) that lives as long as the client."""
    from vigilus.redaction import remember_secret

    wants_tls = row.url.startswith("https://") or (
        row.url.startswith("tcp://")
        and bool(row.tls_ca_certificate or row.tls_client_certificate or row.tls_client_key)
    )
    if not wants_tls:
        return None, None
    if bool(row.tls_client_certificate) != bool(row.tls_client_key):
        raise ToolError(
            f"endpoint {row.name!r} has a TLS client certificate without its key (or a key without its certificate): "
            "set both in the dashboard (Infrastructure)"
        )
    remember_secret(row.tls_client_key)
    directory = Path(tempfile.mkdtemp(prefix="vigilus-docker-tls-", dir=tls_parent_dir()))
    _remove_tls_files_at_exit()
    ca_cert = _write_private(directory / "ca.pem", row.tls_ca_certificate) if row.tls_ca_certificate else None
    client_cert = None
    if row.tls_client_certificate:
        client_cert = (
            _write_private(directory / "cert.pem", row.tls_client_certificate),
            _write_private(directory / "key.pem", row.tls_client_key),
        )
    return TLSConfig(client_cert=client_cert, ca_cert=ca_cert, verify=row.tls_verify), directory


def tls_parent_dir() -> str:
    """Where the private TLS directories go: /dev/shm (memory, never on disk) when usable, else the temp dir."""
    shm = "/dev/shm"  # noqa: S108 - a private mkdtemp directory inside it, 0700
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else tempfile.gettempdir()


@functools.cache
def _remove_tls_files_at_exit() -> None:
    """Once per process: close the clients (and delete their TLS files) when the process ends."""
    atexit.register(forget_clients)


def _write_private(path: Path, text: str) -> str:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
    return str(path)


def forget_clients() -> None:
    """Close every cached client (tests, and a worker that wants fresh connections)."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.close()


@contextmanager
def open_engine(endpoint: str | None) -> Iterator[Engine]:
    """The engine for `endpoint`; the engine's failures inside the block become errors the model can act on."""
    engine = _engine_for(endpoint)
    with _docker_errors(engine):
        yield engine


@contextmanager
def _docker_errors(engine: Engine) -> Iterator[None]:
    """The engine's failures inside the block as errors the model (or a person) can act on."""
    try:
        yield
    except ToolError:
        raise
    except docker.errors.NotFound as exc:
        raise ToolError(f"not found on {engine.label}: {api_error_text(exc)}") from None
    except docker.errors.APIError as exc:
        raise ToolError(f"the Docker engine ({engine.label}) refused: {api_error_text(exc)}") from None
    except requests.exceptions.Timeout:
        raise ToolError(
            f"the Docker engine ({engine.label}, {display_url(engine.url)}) did not answer within "
            f"{CLIENT_TIMEOUT}s; it may be overloaded or hung"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise _unreachable(engine.label, engine.url, exc, configured=engine.key[0] == "row") from None
    except docker.errors.DockerException as exc:
        raise ToolError(f"Docker error ({engine.label}): {exc}") from None


def api_error_text(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    text = str(explanation or exc)
    status = exc.status_code
    return f"{text} (HTTP {status})" if status else text


def container_data(engine: Engine, ref: str) -> dict[str, Any]:
    """The engine's inspect data for a container, or a ToolError naming it."""
    try:
        return engine.client.api.inspect_container(ref)
    except docker.errors.NotFound:
        raise ToolError(
            f"no container named {ref!r} on {engine.label}; list_containers (all=true) shows the containers"
        ) from None
