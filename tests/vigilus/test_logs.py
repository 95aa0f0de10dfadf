"""Every log record is masked where it is made: a library's logger with a handler of its own (past any filter
Vigilus puts on its handlers) writes no secret either, in its message, its arguments or its traceback."""

from __future__ import annotations

import io
import logging
import secrets

import pytest

from vigilus.logs import RedactedText, RedactingFilter, redact_record
from vigilus.redaction import MASK, remember_secret


@pytest.fixture
def library_log() -> tuple[logging.Logger, io.StringIO]:
    """A third-party library's logger: its own handler, no filter of ours, not propagating to the root."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger(f"somelibrary.{secrets.token_hex(4)}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)


def test_a_librarys_own_handler_writes_stored_secrets_masked(library_log) -> None:
    logger, stream = library_log
    secret = secrets.token_hex(12)
    remember_secret(secret)
    logger.info("POST https://api.example/v1?key=%s -> 200", secret)
    try:
        raise ConnectionError(f"refused for {secret}")
    except ConnectionError:
        logger.exception("request failed")
    written = stream.getvalue()
    assert secret not in written
    assert f"key={MASK}" in written and f"ConnectionError: refused for {MASK}" in written


def test_a_credential_shape_is_masked_in_a_librarys_log(library_log) -> None:
    logger, stream = library_log
    logger.warning("retrying with Authorization: Bearer abcdef0123456789")
    assert "abcdef0123456789" not in stream.getvalue() and f"Bearer {MASK}" in stream.getvalue()


def test_a_message_marked_redacted_is_kept_as_built() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, RedactedText('{"note": "100%"}'), None, None)
    redact_record(record)
    assert record.getMessage() == '{"note": "100%"}'


def test_a_record_is_masked_once_and_extra_attributes_still_work(library_log) -> None:
    logger, stream = library_log
    logger.info("plain", extra={"vigilus_redacted": True})  # the old marker may still be passed as extra
    assert "plain" in stream.getvalue()


def _through_filter(record: logging.LogRecord) -> str:
    """How a handler with the filter writes a record made without the factory (a process that never installed it)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.handle(record)
    return stream.getvalue()


def test_the_handler_filter_masks_a_record_the_factory_did_not_make() -> None:
    secret = secrets.token_hex(12)
    remember_secret(secret)
    try:
        raise RuntimeError(f"auth failed for {secret}")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "login to %s with %s", ("nas", secret), exc_info)
    written = _through_filter(record)
    assert secret not in written and "login to nas" in written and "RuntimeError" in written and MASK in written


def test_only_a_message_marked_as_made_of_redacted_parts_is_left_unscanned_and_never_its_traceback(library_log):
    """An audit entry's line is built from redacted columns (audit.services.log_line) and marked so: it is written
    exactly as built. Any other message is scanned, and so is a traceback, marked or not."""
    logger, stream = library_log
    secret = secrets.token_hex(12)
    remember_secret(secret)
    as_built = "the model asked for: password=letmein77"  # what the scan would mask
    logger.info(RedactedText(as_built))
    logger.info("%s", as_built)
    try:
        raise RuntimeError(f"auth {secret}")
    except RuntimeError:
        logger.exception(RedactedText(as_built))
    lines = stream.getvalue()
    assert lines.count(as_built) == 2 and f"password={MASK}" in lines and secret not in lines
