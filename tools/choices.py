from __future__ import annotations

from django.db import models


class Intent(models.TextChoices):
    """What a tool call may do, weakest first. Read runs; the others need a grant."""

    READ = "read", "Read"
    WRITE = "write", "Write"
    EXEC = "exec", "Exec"
    ELEVATE = "elevate", "Elevate"

    @property
    def rank(self) -> int:
        return list(Intent).index(self)

    @classmethod
    def strongest(cls, *intents: Intent | str) -> Intent:
        return max((cls(i) for i in intents), key=lambda i: i.rank)


class Transport(models.TextChoices):
    STDIO = "stdio", "stdio (a command Vigilus starts)"
    STREAMABLE_HTTP = "streamable_http", "Streamable HTTP"
    SSE = "sse", "SSE (legacy HTTP)"
    BUILTIN = "builtin", "Built-in (in-process)"


class ServerSource(models.TextChoices):
    BUILTIN = "builtin", "Built-in"
    MCP_JSON = "mcp_json", "mcp.json"
    DASHBOARD = "dashboard", "Dashboard"


class ServerStatus(models.TextChoices):
    UNKNOWN = "unknown", "Not yet discovered"
    OK = "ok", "OK"
    UNREACHABLE = "unreachable", "Unreachable"
    MISCONFIGURED = "misconfigured", "Misconfigured"
    DISABLED = "disabled", "Disabled"


class ReviewState(models.TextChoices):
    REVIEWED = "reviewed", "Reviewed"
    NEW = "new", "New (not yet reviewed)"
    CHANGED = "changed", "Changed since review: withdrawn"
