"""The `target` of an SSH call resolved to inventory servers: a server name, a tag, `os:<id>`, `all`, or
several of these separated by commas."""

from __future__ import annotations

from collections.abc import Iterable

from tools.errors import InventoryError
from tools.models import Server

ALL = "all"
OS_PREFIX = "os:"


def resolve_targets(target: str) -> list[Server]:
    """The servers a `target` names: a server name, a tag, `os:<id>` (as found by a test), `all`, or several
    of these separated by commas. InventoryError when a part matches nothing (nothing is guessed)."""
    parts = [p.strip() for p in str(target).split(",") if p.strip()]
    if not parts:
        raise InventoryError("no target given: name a server, a tag, os:<id> (e.g. os:ubuntu) or all")
    servers = list(Server.objects.select_related("credential").order_by("name"))
    if not servers:
        raise InventoryError("no servers in the inventory yet: add one in the dashboard or with `servers add`")
    chosen: dict[int, Server] = {}
    for part in parts:
        key = part.lower()
        if key == ALL:
            matched = servers
        elif key.startswith(OS_PREFIX):
            wanted = key[len(OS_PREFIX) :]
            matched = [s for s in servers if s.os_id == wanted]
            if not matched:
                raise InventoryError(
                    f"no server with OS {wanted!r} (OS is detected by a connection test; "
                    f"known: {', '.join(sorted({s.os_id for s in servers if s.os_id})) or 'none tested yet'})"
                )
        else:
            matched = [s for s in servers if s.name == key] or [s for s in servers if key in s.tags]
            if not matched:
                raise InventoryError(
                    f"{part!r} is neither a server nor a tag (servers: {', '.join(s.name for s in servers)}; "
                    f"tags: {', '.join(sorted({t for s in servers for t in s.tags})) or 'none'})"
                )
        for server in matched:
            chosen[server.pk] = server
    return sorted(chosen.values(), key=lambda s: s.name)


def target_label(servers: Iterable[Server]) -> str:
    """The host list as it appears in a grant's scope and an access request."""
    return "ssh:" + ",".join(s.name for s in servers)
