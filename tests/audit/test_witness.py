"""The witness outside the database: every checkpoint is appended to the witness file (and sent to the outside
witnesses), and `audit verify` checks the log against it, so an attacker who owns the database but not the host
cannot cut, rewrite or un-checkpoint the log unnoticed, even after moving the chain head back and deleting the
newest checkpoints.

To tamper, the tests act as an attacker with write access to the database: they drop the triggers and put them
back (tests/audit/conftest.py), move the chain head, delete checkpoints; they never touch the witness file, which
lives on the host, unless a test plays a broken or edited file.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import stat
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from audit.chain import HASHED_FIELDS, canonical_time, entry_hash
from audit.choices import Finding
from audit.models import AuditCheckpoint, AuditEntry, ChainHead
from audit.services import instance_keys, record, signing_payload, take_checkpoint, verify_log
from tests.audit.conftest import tampering
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db


def entries(n: int) -> list[AuditEntry]:
    return [
        record("tool_call.decision", actor="patcher", actor_kind="operator", decision="allowed", tool="t", run=i)
        for i in range(n)
    ]


@pytest.fixture
def log() -> list[AuditEntry]:
    """Six entries, witnessed at #3 and at #6."""
    made = entries(3)
    take_checkpoint()
    made += entries(3)
    take_checkpoint()
    return made


def sql(statement: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def witness_lines() -> list[dict]:
    return [json.loads(line) for line in Path(settings.AUDIT_WITNESS_FILE).read_text().splitlines()]


def findings() -> list[tuple[str, int | None]]:
    """(kind, sequence) of every problem verify reports, first first."""
    return [(problem.kind, problem.sequence) for problem in verify_log().problems]


def content(sequence: int) -> dict:
    return dict(zip(HASHED_FIELDS, AuditEntry.objects.values_list(*HASHED_FIELDS).get(sequence=sequence), strict=True))


def cut_tail(after: int) -> None:
    """Delete the entries after `after`, move the chain head back to it, and delete the checkpoints beyond it."""
    head = AuditEntry.objects.values_list("hash", flat=True).get(sequence=after)
    with tampering():
        sql("DELETE FROM audit_auditentry WHERE sequence > %s", [after])
        sql("DELETE FROM audit_auditcheckpoint WHERE sequence > %s", [after])
    ChainHead.objects.filter(pk=1).update(sequence=after, hash=head)


def test_each_checkpoint_is_appended_to_the_witness_file(log: list[AuditEntry]) -> None:
    path = Path(settings.AUDIT_WITNESS_FILE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    checkpoints = list(AuditCheckpoint.objects.order_by("sequence"))
    assert witness_lines() == [
        {
            "sequence": c.sequence,
            "hash": c.hash,
            "created_at": canonical_time(c.created_at),
            "key_id": c.key_id,
            "signature": c.signature,
        }
        for c in checkpoints
    ]
    assert [c.sequence for c in checkpoints] == [3, 6] and all(c.witnessed for c in checkpoints)
    assert take_checkpoint() == checkpoints[-1] and len(witness_lines()) == 2  # the log has not grown: no new line
    report = verify_log()
    assert report.ok and report.witness.present and (report.witness.checkpoints, report.witness.latest) == (2, 6)


def test_a_cut_tail_is_caught_after_the_head_was_moved_back_and_the_newest_checkpoints_deleted(
    log: list[AuditEntry],
) -> None:
    """Without the witness the log agrees with itself again: head at #4, newest checkpoint at #3."""
    cut_tail(after=4)
    assert findings() == [(Finding.CUT_TAIL, 5), (Finding.CHECKPOINT_MISSING, 6)]
    report = verify_log()
    assert "the log ends at #4 but the checkpoint witnessed outside the database" in report.problem.message
    assert "covers #6 (the tail was cut off)" in report.problem.message
    err = io.StringIO()
    with pytest.raises(CommandError, match="failed at entry #5: missing") as excinfo:
        call_command("audit", "verify", stdout=io.StringIO(), stderr=err)
    assert excinfo.value.returncode == 1
    assert "Cut-off tail: entry #5" in err.getvalue()
    assert "Witnessed checkpoint missing from the database: entry #6" in err.getvalue()


def test_a_cut_tail_is_caught_even_when_the_log_has_grown_again(log: list[AuditEntry]) -> None:
    """Cut back to #4 and written on: the new #6 is not the #6 that was witnessed."""
    cut_tail(after=4)
    entries(4)
    assert findings() == [(Finding.REWRITTEN, 6), (Finding.CHECKPOINT_MISSING, 6)]


def test_a_deleted_checkpoint_is_caught(log: list[AuditEntry]) -> None:
    with tampering():
        sql("DELETE FROM audit_auditcheckpoint WHERE sequence = 3")
    assert findings() == [(Finding.CHECKPOINT_MISSING, 3)]
    message = verify_log().problem.message
    assert "is missing from the database (deleted; witnessed checkpoints missing: #3)" in message


def test_a_rewritten_entry_is_caught_though_every_hash_after_it_was_recomputed(log: list[AuditEntry]) -> None:
    """The attacker changes #2 and re-chains #2-#6 so every link and hash holds, moves the head, and deletes the
    checkpoints they cannot sign again."""
    previous = log[0].hash
    with tampering():
        for sequence in range(2, 7):
            forged = {**content(sequence), "prev_hash": previous}
            if sequence == 2:
                forged["decision"] = "denied"
            previous = entry_hash(forged)
            sql(
                "UPDATE audit_auditentry SET decision = %s, prev_hash = %s, hash = %s WHERE sequence = %s",
                [forged["decision"], forged["prev_hash"], previous, sequence],
            )
        sql("DELETE FROM audit_auditcheckpoint")
    ChainHead.objects.filter(pk=1).update(hash=previous)
    report = verify_log()
    assert [(p.kind, p.sequence) for p in report.problems] == [(Finding.REWRITTEN, 3), (Finding.CHECKPOINT_MISSING, 3)]
    assert "witnessed checkpoints that differ: #3, #6" in report.problem.message
    assert report.entries == 6  # the chain itself is intact: only the witness knows


def forged_line(sequence: int, digest: str, key: Ed25519PrivateKey | None = None) -> dict:
    """A witness line for (sequence, digest) signed by `key` (another key than the instance's), or with a signature
    that is no signature at all."""
    created_at = canonical_time(AuditEntry.objects.get(sequence=1).time + timedelta(hours=1))
    if key is None:
        key_id, signature = instance_keys()[2], base64.b64encode(b"x" * 64).decode()
    else:
        signed = key.sign(signing_payload(sequence, digest, created_at))
        key_id, signature = "0123456789abcdef", base64.b64encode(signed).decode()
    return {"sequence": sequence, "hash": digest, "created_at": created_at, "key_id": key_id, "signature": signature}


def append_line(data: dict | str) -> None:
    with open(settings.AUDIT_WITNESS_FILE, "a") as file:
        file.write((data if isinstance(data, str) else json.dumps(data)) + "\n")


def test_a_witness_line_with_a_bad_signature_is_caught_and_not_believed(log: list[AuditEntry]) -> None:
    append_line(forged_line(9, "a" * 64))  # it would claim a cut tail
    assert findings() == [(Finding.BAD_SIGNATURE, 9)]
    assert "on line 3 of the witness file has an invalid signature" in verify_log().problem.message
    append_line(forged_line(4, "b" * 64, Ed25519PrivateKey.generate()))
    problems = verify_log().problems
    assert [(p.kind, p.sequence) for p in problems] == [(Finding.BAD_SIGNATURE, 4), (Finding.BAD_SIGNATURE, 9)]
    assert "was signed by another key (0123456789abcdef" in problems[0].message


def test_a_witness_line_that_is_not_a_checkpoint_is_reported_and_a_torn_last_line_only_noted(
    log: list[AuditEntry],
) -> None:
    witnessed = Path(settings.AUDIT_WITNESS_FILE).read_text()
    append_line("{not json")
    append_line('{"sequence": 2}')
    report = verify_log()
    assert [(p.kind, p.sequence) for p in report.problems] == [(Finding.WITNESS_UNREADABLE, None)]
    assert "line 3 (not JSON), line 4 (no hash, created_at, key_id, signature)" in report.problem.message
    Path(settings.AUDIT_WITNESS_FILE).write_text(witnessed)
    with open(settings.AUDIT_WITNESS_FILE, "a") as file:
        file.write('{"created_at":"2026-')  # a power cut in the middle of a write
    report = verify_log()
    assert report.ok and report.notes == [
        f"the witness file {settings.AUDIT_WITNESS_FILE} has an incomplete line 3 (a write cut short by a crash or a "
        "power cut): left out"
    ]
    record("more")
    assert take_checkpoint().sequence == 7
    lines = Path(settings.AUDIT_WITNESS_FILE).read_text().splitlines()
    assert lines[2] == '{"created_at":"2026-' and json.loads(lines[3])["sequence"] == 7  # a line of its own
    report = verify_log()
    assert report.ok and report.witness.checkpoints == 3 and "incomplete line 3" in report.notes[0]


def test_a_missing_witness_file_is_a_problem_once_the_log_was_witnessed(log: list[AuditEntry]) -> None:
    Path(settings.AUDIT_WITNESS_FILE).unlink()
    report = verify_log()
    assert [(p.kind, p.sequence) for p in report.problems] == [(Finding.WITNESS_MISSING, None)]
    assert "is missing, but 2 checkpoint(s) in the database were witnessed to it" in report.problem.message


def test_a_log_from_before_witnesses_is_noted_and_witnessed_by_the_next_checkpoint() -> None:
    """An installation upgraded from a version without the witness: its checkpoints were never witnessed."""
    last = entries(3)[-1]
    private, _public, key_id = instance_keys()
    created_at = last.time
    signature = base64.b64encode(private.sign(signing_payload(3, last.hash, created_at))).decode()
    AuditCheckpoint(sequence=3, hash=last.hash, created_at=created_at, key_id=key_id, signature=signature).save()
    report = verify_log()
    assert report.ok and "the log has never been witnessed outside the database" in report.notes[0]
    out = io.StringIO()
    call_command("audit", "checkpoint", stdout=out)  # the log has not grown, but its checkpoint was never witnessed
    assert f"witnessed in {settings.AUDIT_WITNESS_FILE}" in out.getvalue()
    assert [line["sequence"] for line in witness_lines()] == [3] and AuditCheckpoint.objects.count() == 2
    report = verify_log()
    assert report.ok and report.notes == [] and report.witness.checkpoints == 1


def test_verify_json_says_what_the_witness_check_found(log: list[AuditEntry]) -> None:
    out = io.StringIO()
    call_command("audit", "verify", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["ok"] and data["witness"]["present"] and data["witness"]["checkpoints"] == 2
    assert data["witness"]["file"] == str(settings.AUDIT_WITNESS_FILE)
    cut_tail(after=4)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("audit", "verify", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert not data["ok"] and data["problem"]["kind"] == "cut_tail" and data["problem"]["sequence"] == 5
    assert [p["kind"] for p in data["witness"]["problems"]] == ["cut_tail", "checkpoint_missing"]
    assert [p["kind"] for p in data["problems"]] == ["cut_tail", "checkpoint_missing"]


def test_a_witness_file_that_cannot_be_written_fails_the_checkpoint_loudly(tmp_path: Path, settings) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.AUDIT_WITNESS_FILE = blocker / "audit-witness.jsonl"
    entries(1)
    with pytest.raises(CommandError, match=f"cannot append checkpoint #1 to the witness file {blocker}"):
        call_command("audit", "checkpoint", stdout=io.StringIO())


# --- outside witnesses -----------------------------------------------------------------------------


class _Witness(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, json.loads(body)))  # type: ignore[attr-defined]
        status = 500 if self.path.startswith("/broken") else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def outside_witness() -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server on 127.0.0.1 that keeps what it is POSTed."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Witness)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_outside_witnesses_receive_every_checkpoint(outside_witness: ThreadingHTTPServer, settings) -> None:
    port = outside_witness.server_address[1]
    settings.AUDIT_WITNESS_URLS = (
        f"http://127.0.0.1:{port}/witness?token=4f9c2e7a1b3d5f60\njson://127.0.0.1:{port}/apprise"
    )
    entries(2)
    checkpoint = take_checkpoint()
    (line,) = witness_lines()
    received = dict(outside_witness.received)
    assert received["/witness?token=4f9c2e7a1b3d5f60"] == line  # the checkpoint as the witness file holds it
    apprise = received["/apprise"]
    assert apprise["title"] == "Vigilus audit checkpoint #2" and json.loads(apprise["message"]) == line
    assert line["signature"] == checkpoint.signature


def test_an_outside_witness_that_fails_is_logged_without_its_secrets_and_stops_nothing(
    outside_witness: ThreadingHTTPServer, settings, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        unused = closed.getsockname()[1]
    port = outside_witness.server_address[1]
    settings.AUDIT_WITNESS_URLS = (
        f"http://127.0.0.1:{unused}/hook?token=9d8c7b6a5f4e3d2c,https://user:pa55w0rd-123@127.0.0.1:{unused}/x, "
        f"http://127.0.0.1:{port}/broken/5e4d3c2b1a0f9e8d"
    )
    caplog.set_level(logging.WARNING, logger="vigilus.audit")
    entries(1)
    checkpoint = take_checkpoint()
    assert checkpoint.sequence == 1 and [line["sequence"] for line in witness_lines()] == [1]
    assert [path for path, _body in outside_witness.received] == ["/broken/5e4d3c2b1a0f9e8d"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert f"was not sent to the outside witness http://127.0.0.1:{unused}: cannot connect" in warnings[0]
    assert f"https://127.0.0.1:{unused}" in warnings[1]
    assert f"http://127.0.0.1:{port}: it answered HTTP 500" in warnings[2]
    logged = "\n".join(warnings)
    assert not [secret for secret in ("9d8c7b6a5f4e3d2c", "pa55w0rd", "user", "5e4d3c2b1a0f9e8d") if secret in logged]
    assert verify_log().ok


# --- checkpoints every N entries ---------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_checkpoint_is_taken_after_every_n_entries(celery_worker: str, settings) -> None:
    """record() asks the worker for a checkpoint once the Nth, 2Nth, ... entry has committed, whether it was written
    alone (as a tool call's entries are) or in a transaction with the change it records."""
    settings.AUDIT_CHECKPOINT_EVERY = 5

    def checkpoints() -> list[int]:
        return list(AuditCheckpoint.objects.order_by("sequence").values_list("sequence", flat=True))

    entries(4)
    assert checkpoints() == []
    entries(1)
    wait_for(lambda: checkpoints() == [5], timeout=30, what="the checkpoint at #5")
    with transaction.atomic():
        entries(5)
        assert checkpoints() == [5]  # not before the entry commits
    wait_for(lambda: checkpoints() == [5, 10], timeout=30, what="the checkpoint at #10")
    entries(2)
    assert [line["sequence"] for line in witness_lines()] == [5, 10]
    report = verify_log()
    assert report.ok and report.witness.latest == 10 and report.entries == 12
