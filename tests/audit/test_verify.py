"""`audit verify` catches an edited, deleted, inserted or reordered row, and a cut-off tail.

To tamper, the tests act as an attacker with write access to the database: they drop the triggers
(and put them back). What the witness outside the database catches is in test_witness.py.
"""

from __future__ import annotations

import base64

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit import services
from audit.chain import entry_hash
from audit.models import AuditCheckpoint, AuditEntry, ChainHead
from audit.services import record, take_checkpoint, verify_log
from tests.audit.conftest import tampering

pytestmark = pytest.mark.django_db


@pytest.fixture
def log() -> list[AuditEntry]:
    return [
        record("tool_call.decision", actor=f"op{i}", actor_kind="operator", decision="allowed", tool="t", run=i)
        for i in range(1, 7)
    ]


def sql(statement: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def problem_at() -> tuple[int | None, str]:
    report = verify_log()
    assert not report.ok
    return report.problem.sequence, report.problem.message


def content(sequence: int) -> dict:
    from audit.chain import HASHED_FIELDS

    return dict(zip(HASHED_FIELDS, AuditEntry.objects.values_list(*HASHED_FIELDS).get(sequence=sequence), strict=True))


def test_an_intact_log_verifies(log: list[AuditEntry]) -> None:
    take_checkpoint()
    report = verify_log()
    assert report.ok and report.entries == 6 and report.latest_checkpoint == 6


def test_an_edited_row_is_caught(log: list[AuditEntry]) -> None:
    with tampering():
        sql("UPDATE audit_auditentry SET decision = 'denied' WHERE sequence = 3")
    assert problem_at() == (3, "hash mismatch: the entry's content was changed after it was written")


def test_an_edited_row_with_its_hash_recomputed_breaks_the_next_link(log: list[AuditEntry]) -> None:
    forged = {**content(3), "decision": "denied"}
    with tampering():
        sql("UPDATE audit_auditentry SET decision = 'denied', hash = %s WHERE sequence = 3", [entry_hash(forged)])
    sequence, message = problem_at()
    assert sequence == 4 and "broken link" in message


def test_a_deleted_row_is_caught(log: list[AuditEntry]) -> None:
    with tampering():
        sql("DELETE FROM audit_auditentry WHERE sequence = 3")
    assert problem_at() == (4, "sequence gap: entry #3 is missing before it")


def test_a_deleted_genesis_is_caught(log: list[AuditEntry]) -> None:
    with tampering():
        sql("DELETE FROM audit_auditentry WHERE sequence <= 2")
    sequence, message = problem_at()
    assert sequence == 3 and "genesis" in message


def test_an_inserted_row_is_caught(log: list[AuditEntry]) -> None:
    """The attacker shifts entries 4.. up by one and slips a well-formed entry in at #4."""
    forged = {**content(4), "actor": "nobody", "prev_hash": log[2].hash}
    with tampering():
        sql("UPDATE audit_auditentry SET sequence = sequence + 100 WHERE sequence >= 4")
        sql("UPDATE audit_auditentry SET sequence = sequence - 99 WHERE sequence >= 100")
        AuditEntry.objects.bulk_create([AuditEntry(**forged, hash=entry_hash(forged))])
    sequence, message = problem_at()
    assert sequence == 5  # the forged #4 links and hashes fine; the shifted old #4 no longer does
    assert "broken link" in message or "hash mismatch" in message


def test_reordered_rows_are_caught(log: list[AuditEntry]) -> None:
    with tampering():
        sql("UPDATE audit_auditentry SET sequence = 100 WHERE sequence = 3")
        sql("UPDATE audit_auditentry SET sequence = 3 WHERE sequence = 4")
        sql("UPDATE audit_auditentry SET sequence = 4 WHERE sequence = 100")
    sequence, message = problem_at()
    assert sequence == 3 and "broken link" in message


def test_a_cut_off_tail_is_caught_by_the_chain_head(log: list[AuditEntry]) -> None:
    with tampering():
        sql("DELETE FROM audit_auditentry WHERE sequence >= 5")
    sequence, message = problem_at()
    assert sequence == 5 and "chain head is at #6" in message


def test_a_cut_off_tail_with_the_head_rewound_is_caught_by_the_signed_checkpoint(log: list[AuditEntry]) -> None:
    take_checkpoint()
    with tampering():
        sql("DELETE FROM audit_auditentry WHERE sequence >= 5")
    ChainHead.objects.filter(pk=1).update(sequence=4, hash=log[3].hash)
    sequence, message = problem_at()
    assert sequence == 5 and "covers #6" in message and "cut off" in message
    with pytest.raises(CommandError, match="#5") as excinfo:
        call_command("audit", "verify")
    assert excinfo.value.returncode == 1


def test_a_rewritten_log_differs_from_its_checkpoint(log: list[AuditEntry]) -> None:
    take_checkpoint()
    with tampering():
        sql("DELETE FROM audit_auditentry WHERE sequence = 6")
    ChainHead.objects.filter(pk=1).update(sequence=5, hash=log[4].hash)
    replacement = record("tool_call.decision", actor="someone-else")  # a different #6
    assert replacement.sequence == 6
    sequence, message = problem_at()
    assert sequence == 6 and "differs from the one in checkpoint" in message


def test_a_forged_checkpoint_is_caught(log: list[AuditEntry]) -> None:
    checkpoint = take_checkpoint()
    with tampering():
        sql(
            "UPDATE audit_auditcheckpoint SET signature = %s WHERE id = %s",
            [base64.b64encode(b"x" * 64).decode(), checkpoint.pk],
        )
    sequence, message = problem_at()
    assert sequence == 6 and "invalid signature" in message


def test_a_row_appended_behind_the_service_is_caught(log: list[AuditEntry]) -> None:
    forged = {**content(6), "sequence": 7, "prev_hash": log[5].hash}
    AuditEntry.objects.bulk_create([AuditEntry(**forged, hash=entry_hash(forged))])
    sequence, message = problem_at()
    assert sequence == 7 and "beyond the chain head" in message


def test_checkpoints_are_signed_and_not_repeated_for_an_unchanged_log(log: list[AuditEntry]) -> None:
    first = take_checkpoint()
    assert (first.sequence, first.hash) == (6, log[5].hash)
    assert services.checkpoint_signature_problem(first) == ""
    assert take_checkpoint() == first and AuditCheckpoint.objects.count() == 1
    record("more")
    assert take_checkpoint().sequence == 7


def test_an_empty_log_verifies_and_has_nothing_to_sign() -> None:
    assert verify_log().ok and take_checkpoint() is None
