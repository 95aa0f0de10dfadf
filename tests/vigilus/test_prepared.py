"""PreparedLookup: the gateway's tool lookup gives what the ORM gives, read fresh on every call."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tools.choices import ReviewState, Transport
from tools.models import MCPServer, Tool
from vigilus.prepared import PreparedLookup

pytestmark = pytest.mark.django_db

tool_named = PreparedLookup(lambda name: Tool.objects.select_related("server").filter(qualified_name=name))


def fields(instance: object) -> dict:
    return {k: v for k, v in vars(instance).items() if not k.startswith("_")}


@pytest.fixture
def tool() -> Tool:
    server = MCPServer.objects.create(
        name="nas",
        transport=Transport.STDIO,
        command="/usr/bin/nas-mcp",
        args=["--root", "/srv"],
        env=json.dumps({"NAS_TOKEN": "s3cret-token-value"}),
        trusted=True,
    )
    return Tool.objects.create(
        server=server,
        name="list_shares",
        qualified_name="nas__list_shares",
        description="List the shares",
        input_schema={"type": "object", "properties": {"path": {"type": "string"}}},
        annotations={"readOnlyHint": True},
        definition_hash="a" * 64,
    )


def test_the_instance_and_its_server_are_what_the_orm_builds(tool: Tool) -> None:
    expected = Tool.objects.select_related("server").get(pk=tool.pk)
    with CaptureQueriesContext(connection) as queries:
        found = tool_named("nas__list_shares")
        assert found is not None
        assert fields(found) == fields(expected)
        assert fields(found.server) == fields(expected.server)
        assert found.server.env_vars == {"NAS_TOKEN": "s3cret-token-value"}  # decrypted, like the ORM's
        assert found.available is True and found.server.trusted is True  # booleans, not 0/1
    assert len(queries) == 1  # the server came with the tool
    found.description = "changed"
    found.save(update_fields=["description"])  # a normal instance: it can be saved
    assert Tool.objects.get(pk=tool.pk).description == "changed"


def test_every_call_reads_the_database_again(tool: Tool) -> None:
    assert tool_named("nas__list_shares").withdrawn is False
    Tool.objects.filter(pk=tool.pk).update(review_state=ReviewState.CHANGED)
    MCPServer.objects.filter(pk=tool.server_id).update(enabled=False)
    again = tool_named("nas__list_shares")
    assert again.withdrawn is True and again.server.enabled is False


def test_no_row_is_none_and_the_value_is_a_parameter(tool: Tool) -> None:
    assert tool_named("nope__tool") is None
    assert tool_named("nas__list_shares' OR '1'='1") is None


def test_a_lookup_that_can_match_two_rows_says_so(tool: Tool) -> None:
    Tool.objects.create(
        server=tool.server, name="other", qualified_name="nas__other", input_schema={}, definition_hash="b" * 64
    )
    by_server = PreparedLookup(lambda name: Tool.objects.filter(server__name=name))
    with pytest.raises(Tool.MultipleObjectsReturned):
        by_server("nas")
    with pytest.raises(ValueError, match="exactly one value"):
        PreparedLookup(lambda name: Tool.objects.filter(name=name, description="x"))("x")
