"""Connection checks for the Docker endpoints and Wazuh instances in the inventory, each recorded in the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from audit.events import AuditEvent
from audit.services import record
from tools.models import DockerEndpoint, WazuhInstance
from vigilus.redaction import display_url, redact


@dataclass
class CheckResult:
    ok: bool
    message: str


def _record_check(event: str, result: CheckResult, *, actor: Any, target: str) -> CheckResult:
    with transaction.atomic():
        outcome = "succeeded" if result.ok else "failed"
        record(event, actor=actor, target=target, outcome=outcome, error="" if result.ok else result.message)
    return result


def check_docker_endpoint(endpoint: DockerEndpoint, *, actor: Any = "system") -> CheckResult:
    """Ask the engine for its version, connecting as the docker server would (TLS files only for the check)."""
    from mcp.server.mcpserver.exceptions import ToolError

    from tools.servers.docker.engine import engine_version

    try:
        result = CheckResult(True, f"{endpoint.name}: {engine_version(endpoint)}")
    except ToolError as exc:
        result = CheckResult(False, f"{endpoint.name}: {redact(str(exc))}")
    return _record_check(AuditEvent.DOCKER_ENDPOINT_TESTED, result, actor=actor, target=endpoint.name)


def check_wazuh(instance: WazuhInstance, *, actor: Any = "system") -> CheckResult:
    """Log in to the Wazuh server API as the wazuh server would; the password and token never show."""
    from mcp.server.mcpserver.exceptions import ToolError

    from tools.servers.wazuh import WazuhSession

    session = WazuhSession(instance)
    try:
        session.authenticate()
        result = CheckResult(
            True,
            f"{instance.name}: logged in to the Wazuh API at {display_url(instance.api_url)} as {instance.username!r}",
        )
    except ToolError as exc:
        result = CheckResult(False, f"{instance.name}: {redact(str(exc))}")
    finally:
        session.close()
    return _record_check(AuditEvent.WAZUH_TESTED, result, actor=actor, target=instance.name)
