"""Secrets are masked by value wherever they appear, and by shape (private keys, bearer tokens here; each rule of
vigilus/secret_rules.py with its own examples in test_redaction_rules.py)."""

from __future__ import annotations

import pytest

from providers.models import Provider
from vigilus.redaction import (
    MASK,
    NotPlainJSON,
    load_known_secrets,
    redact,
    redact_data,
    redact_json,
    remember_secret,
)

SECRET = "hunter2-pa55-q9z"
PEM = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBx0x8example0key0material0only0for0tests00000000000000000
-----END OPENSSH PRIVATE KEY-----"""


def test_secret_embedded_in_a_longer_string_is_masked() -> None:
    remember_secret(SECRET)
    text = f"connect --url=https://user:{SECRET}@nas.lan/api?x=1 failed"
    assert redact(text) == f"connect --url=https://user:{MASK}@nas.lan/api?x=1 failed"


def test_secret_glued_to_other_characters_is_still_masked() -> None:
    remember_secret(SECRET)
    assert SECRET not in redact(f"abc{SECRET}def{SECRET}")


def test_private_key_block_is_masked() -> None:
    out = redact(f"key is:\n{PEM}\nend")
    assert "PRIVATE KEY" not in out and "b3BlbnNzaC1rZXkt" not in out
    assert out.startswith("key is:\n") and out.endswith("\nend")


def test_truncated_private_key_block_is_masked_to_the_end() -> None:
    out = redact("log: " + PEM[:120])
    assert "b3BlbnNzaC1rZXkt" not in out


def test_bearer_token_is_masked() -> None:
    out = redact('curl -H "Authorization: Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln" https://api')
    assert "eyJhbGci" not in out and "Bearer [REDACTED]" in out


def test_key_value_pairs_are_masked() -> None:
    out = redact('{"api_key": "abcdef123456", "password=swordfish99"}')
    assert "abcdef123456" not in out and "swordfish99" not in out


def test_ordinary_text_is_left_alone() -> None:
    text = "apt upgrade -y on nas01 finished: 12 packages, token budget 4000"
    assert redact(text) == text


def test_redact_data_walks_nested_arguments() -> None:
    remember_secret(SECRET)
    data = {"command": f"mysql -p{SECRET}", "env": [{"PW": SECRET}], "n": 3}
    assert redact_data(data) == {"command": f"mysql -p{MASK}", "env": [{"PW": MASK}], "n": 3}


def test_redact_data_masks_what_sits_under_a_secret_looking_key_and_numbers_that_are_secrets() -> None:
    """What an approver sees of a call's arguments, and what a tool's structured result hands the model."""
    remember_secret("55012345")  # a PIN stored in an MCP server's env
    data = {
        "db": {"password": ("hunter2hunter2", 7740214), "port": 5432},
        "credentials": {"user": "backup"},
        "api_token": 48213377,
        "retry_pin": 55012345,
        "usage": {"max_tokens": 128000},  # a count of tokens, not a token
        "note": ("plain", 8443123),
    }
    assert redact_data(data) == {
        "db": {"password": (MASK, MASK), "port": 5432},
        "credentials": {"user": MASK},
        "api_token": MASK,
        "retry_pin": MASK,
        "usage": {"max_tokens": 128000},
        "note": ("plain", 8443123),
    }
    _forget("55012345")


def test_redact_json_gives_what_a_json_column_stores_and_refuses_anything_else() -> None:
    assert redact_json({"a\x00": ("b\x00", 1.5)}) == {"a\ufffd": ["b\ufffd", 1.5]}
    for value in ({1: "int key"}, {"when": object()}, [float("nan")], {"x": float("inf")}):
        with pytest.raises(NotPlainJSON):
            redact_json(value)


def test_a_text_seen_before_a_secret_was_known_is_masked_once_it_is() -> None:
    secret = "late-arriving-secret-77"
    short, long = f"value {secret} here", f"{secret} " + "x" * 2000  # a remembered result; too long to remember
    assert redact(short) == redact(short) == short and redact(long) == long  # not yet a secret, no shape
    remember_secret(secret)
    assert secret not in redact(short) and secret not in redact(long)
    _forget(secret)


def _forget(value: str) -> None:
    from vigilus import redaction

    redaction._known.discard(value)
    redaction._pattern = None
    redaction._memo = {}


@pytest.mark.django_db
def test_a_secret_loaded_from_the_database_is_masked_from_then_on() -> None:
    value = "fresh-secret-never-logged-1"
    Provider.objects.create(name="cloud", kind="openai", api_key=value)
    _forget(value)
    assert value in redact(value), "forgotten: this process no longer knows the value"
    Provider.objects.get(name="cloud")  # loading it teaches this process the value
    assert value not in redact(f"provider key: {value}")


@pytest.mark.django_db
def test_load_known_secrets_reads_every_stored_secret() -> None:
    value = "another-stored-secret-77"
    Provider.objects.create(name="cloud", kind="openai", api_key=value)
    _forget(value)
    assert load_known_secrets() >= 1
    assert redact(f"x{value}y") == f"x{MASK}y"


def test_the_database_and_redis_passwords_are_masked_once_secrets_are_loaded(
    monkeypatch: pytest.MonkeyPatch, settings: object, db: None
) -> None:
    from vigilus.redaction import load_known_secrets, redact

    monkeypatch.setitem(settings.DATABASES["default"], "PASSWORD", "db-pass-8841")
    settings.REDIS_URL = "redis://:redis-pass-2277@127.0.0.1:6379/0"
    load_known_secrets()
    shown = redact("DATABASE_URL=postgres://vigilus:db-pass-8841@h/v REDIS_URL=redis://:redis-pass-2277@h/0")
    assert "db-pass-8841" not in shown and "redis-pass-2277" not in shown


@pytest.mark.django_db
def test_each_value_of_a_stored_env_or_headers_object_is_masked() -> None:
    from tools.choices import Transport
    from tools.models import MCPServer

    MCPServer.objects.create(
        name="nas",
        transport=Transport.STREAMABLE_HTTP,
        url="http://127.0.0.1:9/mcp",
        headers='{"Authorization": "Bearer nas-token-8f3k2", "Content-Type": "application/json"}',
    )
    MCPServer.objects.create(name="git", transport=Transport.STDIO, command="git-mcp", env='{"GH_TOKEN": "ghp_x7Kq9"}')
    echoed = "token nas-token-8f3k2 and ghp_x7Kq9 sent as application/json"
    assert redact(echoed) == f"token {MASK} and {MASK} sent as application/json"


@pytest.mark.parametrize(
    ("original", "found"),
    [
        ({"command": "mysql --password S3cretVal -h db"}, ["S3cretVal"]),
        ({"password": "hunter22", "nested": ["a", {"api_token": 123456789}]}, ["hunter22", "123456789"]),
        (
            {"command": "curl -u a:P4ssw0rd1 http://x -H 'Authorization: Token abcdef123456'"},
            ["P4ssw0rd1", "abcdef123456"],
        ),
        ({"command": "uname -a"}, []),
    ],
)
def test_masked_values_are_what_redaction_took_out(original, found) -> None:
    from vigilus.redaction import masked_values

    assert masked_values(original, redact_data(original)) == found
