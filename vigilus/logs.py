"""Every log record leaves with secrets masked — Vigilus's own, and those of the libraries it uses.

A handler filter (`RedactingFilter`, on the handlers settings.LOGGING makes) only guards the handlers it is put on;
libraries bring handlers of their own (litellm prints through its own), and a library's logger may be set up after
ours. So the masking happens where every record is made: `install()` sets a log record
factory that redacts the message, its traceback and its stack once, whichever logger made it and whichever
handler will write it. Records below a logger's level are never made, so they cost nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from vigilus.redaction import redact

# The attribute that marks a record done. Not `vigilus_redacted`: a record made by the factory has its attributes
# already, and `extra=` may not overwrite one (logging raises KeyError).
MASKED = "vigilus_masked"


class RedactedText(str):
    """A log message built from redacted parts only (an audit entry's line): the factory leaves it as it is."""

    __slots__ = ()


def redact_record(record: logging.LogRecord) -> None:
    """Mask the record's message, traceback and stack in place (once: a record already done is left alone)."""
    if getattr(record, MASKED, False):
        return
    setattr(record, MASKED, True)
    if not (isinstance(record.msg, RedactedText) and not record.args):
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: log it as it is, still redacted
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """A handler filter, for a handler that may receive records made before `install()` (or in a process that never
    called it): what the factory has not masked, it masks."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_made_by: Any = None  # the factory ours wraps (None: not installed)


def install() -> None:
    """Make every log record of this process through `redact_record()`. Idempotent."""
    global _made_by
    if _made_by is not None:
        return
    _made_by = logging.getLogRecordFactory()
    made_by = _made_by

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = made_by(*args, **kwargs)
        redact_record(record)
        return record

    logging.setLogRecordFactory(redacting_factory)
