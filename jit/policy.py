"""The permission policy the gateway asks before every tool call: `authorize(...)`.

The seam for just-in-time grants (the jit issue): until grants exist, read is allowed and every
other intent is denied — the same interface, the safe default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.choices import Intent


@dataclass(frozen=True)
class Decision:
    allowed: bool
    decision: str  # allowed | denied | pending | approved | auto_approved | expired
    reason: str
    grant_id: int | None = None


def authorize(
    *,
    operator: Any,
    tool: Any,
    intent: Intent,
    target: str = "",
    arguments: dict | None = None,
    run: Any = None,
    reason: str = "",
) -> Decision:
    if intent == Intent.READ:
        return Decision(True, "allowed", "read is always allowed")
    return Decision(False, "denied", f"{intent.label} needs a just-in-time grant, and none can be issued yet")
