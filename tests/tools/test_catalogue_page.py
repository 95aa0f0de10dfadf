"""The Tools page as a compact catalogue: tools grouped by server, one row each with its intent chip, a search
over names and descriptions, and every control named by a <label> (a person using a screen reader hears which
tool a select sets)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from tools.catalogue import catalogue
from tools.choices import ReviewState, Transport
from tools.models import MCPServer, Tool

pytestmark = pytest.mark.django_db

READ_ONLY = {"readOnlyHint": True}
DESTRUCTIVE = {"readOnlyHint": False, "destructiveHint": True}


def server(name: str, *, trusted: bool = True, transport: str = Transport.STDIO) -> MCPServer:
    return MCPServer.objects.create(name=name, transport=transport, command="true", trusted=trusted)


def tool(on: MCPServer, name: str, annotations: dict | None = None, description: str = "", **fields: object) -> Tool:
    fields.setdefault("review_state", ReviewState.REVIEWED)
    return Tool.objects.create(
        server=on,
        name=name,
        qualified_name=f"{on.name}__{name}",
        description=description,
        annotations=annotations or {},
        definition_hash=f"hash-{on.name}-{name}",
        **fields,
    )


@pytest.fixture
def tools() -> None:
    files = server("files")
    tool(files, "write_file", DESTRUCTIVE, "Write a file's content.")
    tool(files, "read_file", READ_ONLY, "Read a file; never changes it.")
    outside = server("outside", trusted=False)
    tool(outside, "weather", READ_ONLY, "Tell the WEATHER of a city.", review_state=ReviewState.NEW)
    shell = server("shell", transport=Transport.BUILTIN)
    tool(shell, "run_command", DESTRUCTIVE, "Run a command line.")


def test_tools_are_grouped_by_server_in_name_order_each_with_its_intent(tools: None) -> None:
    groups = catalogue()

    assert [group.server.name for group in groups] == ["files", "outside", "shell"]
    rows = {row.tool.qualified_name: row for group in groups for row in group.rows}
    assert [row.tool.name for row in groups[0].rows] == ["read_file", "write_file"]
    assert (rows["files__read_file"].intent_label, rows["files__read_file"].intent_class) == ("Read", "intent-read")
    assert rows["files__write_file"].intent_label == "Write"
    # An untrusted server's read-only hint is not believed, and says why.
    assert rows["outside__weather"].intent_label == "Exec" and "not trusted" in rows["outside__weather"].why
    assert rows["outside__weather"].current is not None  # not reviewed yet: the definition a review accepts
    assert (rows["shell__run_command"].intent_label, rows["shell__run_command"].intent_class) == (
        "per call",
        "intent-per-call",
    )


def test_search_finds_tools_by_name_or_description_whatever_the_case(tools: None) -> None:
    def found(**filters: str) -> set[str]:
        return {row.tool.qualified_name for group in catalogue(**filters) for row in group.rows}

    assert found(search="weather") == {"outside__weather"}  # the description says WEATHER
    assert found(search="FILE") == {"files__read_file", "files__write_file"}
    assert found(search="never changes") == {"files__read_file"}
    assert found(search="file", intent="write") == {"files__write_file"}
    assert found(search="nothing like it") == set()


class Controls(HTMLParser):
    """The form controls a person can use on a page, and the ids <label for=...> name."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "label" and named.get("for"):
            self.labelled.add(named["for"])
        elif tag in ("select", "textarea") or (tag == "input" and named.get("type") not in ("hidden", "submit")):
            self.controls.append(named)


def unlabelled(page: str) -> list[dict[str, str | None]]:
    parser = Controls()
    parser.feed(page)
    return [control for control in parser.controls if control.get("id") not in parser.labelled]


def test_every_control_on_the_catalogue_has_a_label(tools: None, admin_client: Client) -> None:
    page = admin_client.get(reverse("tools")).content.decode()

    assert unlabelled(page) == []
    # One intent select per tool that takes one (not the per-call shell), each named by its tool.
    for name in ("files__read_file", "files__write_file", "outside__weather"):
        assert f">Intent of {name}</label>" in page
    assert "Intent of shell__run_command" not in page
    for label in ("Search", "Server", "Intent", "Review"):
        assert f">{label}:</label>" in page


def test_the_filters_show_what_was_chosen_and_the_page_groups_by_server(tools: None, viewer_client: Client) -> None:
    page = viewer_client.get(reverse("tools"), {"q": "file", "server": "files"}).content.decode()

    assert 'value="file"' in page and '<option value="files" selected>files</option>' in page
    assert "files__read_file" in page and "outside__weather" not in page
    assert "2 tools" in page
    everything = viewer_client.get(reverse("tools")).content.decode()
    assert "Not trusted: its tools' annotations are not believed" in everything
    assert everything.index("<h2>files") < everything.index("<h2>outside") < everything.index("<h2>shell")
    assert unlabelled(everything) == []  # viewers have no intent selects, only the labelled filters
