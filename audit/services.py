"""The audit interface every area records through: `record(event, ...)`.

This is the seam the tamper-evident audit log plugs into (the jit/audit issue): until the
hash-chained table lands, entries go to the `vigilus.audit` logger, redacted. Callers already use the
final signature, and treat a failure to record before a tool call as a reason not to run it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from vigilus.redaction import redact_data

logger = logging.getLogger("vigilus.audit")


class AuditWriteError(RuntimeError):
    """The entry could not be written; whatever it was to record must not go ahead."""


def record(event: str, *, actor: str = "system", **details: Any) -> None:
    """Record one event (a tool call decision or outcome, a configuration change, ...), redacted."""
    try:
        line = json.dumps({"event": event, "actor": actor, **redact_data(details)}, default=str, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise AuditWriteError(f"cannot serialise the audit entry for {event}: {exc}") from None
    logger.info("%s", line)
