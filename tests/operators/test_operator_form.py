"""The Operator form's tool picker: each server's tools under plain-words intent headings, from a fixed
number of queries, and the chosen tools saved."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from operators.models import Operator
from providers.models import Provider
from providers.services import create_provider
from tools.choices import ReviewState, Transport
from tools.models import MCPServer, Tool
from tools.services import set_tool_intent

pytestmark = pytest.mark.django_db

READ = "read — look only; runs at once"
WRITE = "write — change files and settings; needs a grant"
EXEC = "exec — run programs; needs a grant"
ELEVATE = "elevate — root (sudo); needs a grant"
PER_CALL = "per call — read-only commands run at once; anything else needs a grant"

READ_ONLY = {"readOnlyHint": True}
DESTRUCTIVE = {"readOnlyHint": False, "destructiveHint": True}


class PickerParser(HTMLParser):
    """The tool picker as a person reads it: {server: [(intent heading, [tool labels])]}."""

    def __init__(self) -> None:
        super().__init__()
        self.picker: dict[str, list[tuple[str, list[str]]]] = {}
        self._server: str | None = None
        self._capture: str | None = None  # "server", "heading" or "label"
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "div" and "tool-server" in classes:
            self._server = None
            self._capture, self._text = "server", ""
        elif self._server is not None and tag == "span" and "helptext" in classes:
            self._capture, self._text = "heading", ""
        elif self._server is not None and tag == "label" and "inline-check" in classes:
            self._capture, self._text = "label", ""

    def handle_endtag(self, tag: str) -> None:
        text = " ".join(self._text.split())
        if self._capture == "server" and tag == "strong":
            self._server = text
            self.picker[text] = []
        elif self._capture == "heading" and tag == "span":
            self.picker[self._server].append((text, []))
        elif self._capture == "label" and tag == "label":
            self.picker[self._server][-1][1].append(text)
        else:
            return
        self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture:
            self._text += data


def picker_of(response) -> dict[str, list[tuple[str, list[str]]]]:
    assert response.status_code == 200
    parser = PickerParser()
    parser.feed(response.content.decode())
    return parser.picker


def server(name: str, *, trusted: bool = True, enabled: bool = True) -> MCPServer:
    return MCPServer.objects.create(
        name=name, transport=Transport.STDIO, command="true", trusted=trusted, enabled=enabled
    )


def tool(on: MCPServer, name: str, annotations: dict | None = None, **fields: object) -> Tool:
    fields.setdefault("review_state", ReviewState.REVIEWED)
    return Tool.objects.create(
        server=on,
        name=name,
        qualified_name=f"{on.name}__{name}",
        annotations=annotations or {},
        definition_hash=f"hash-{on.name}-{name}",
        **fields,
    )


@pytest.fixture
def provider(admin_user: User) -> Provider:
    return create_provider(actor=admin_user, name="local", kind="ollama", default_model="m")


def test_each_servers_tools_are_listed_under_intent_headings_weakest_first(admin_client: Client) -> None:
    files = server("files")
    # Names chosen so that alphabetical order mixes the intents: the headings, not the names, group them.
    tool(files, "a-delete", DESTRUCTIVE)
    tool(files, "b-list", READ_ONLY)
    tool(files, "c-run", {})  # a trusted server that says nothing: exec
    tool(files, "d-read", READ_ONLY)
    tool(files, "e-write", {"destructiveHint": False, "readOnlyHint": False})
    outside = server("outside", trusted=False)
    tool(outside, "claims-read", READ_ONLY)  # annotations of an untrusted server are not believed
    shell = MCPServer.objects.create(name="shell", transport=Transport.BUILTIN, trusted=True)
    tool(shell, "run_command", DESTRUCTIVE)  # a command-line tool: the command decides on each call

    picker = picker_of(admin_client.get(reverse("operator-create")))

    assert picker == {
        "files": [(READ, ["b-list", "d-read"]), (WRITE, ["a-delete", "e-write"]), (EXEC, ["c-run"])],
        "outside": [(EXEC, ["claims-read"])],
        "shell": [(PER_CALL, ["run_command"])],
    }


def test_withdrawn_unavailable_and_disabled_servers_tools_are_left_out(admin_client: Client) -> None:
    files = server("files")
    tool(files, "kept", READ_ONLY)
    tool(files, "withdrawn", READ_ONLY, review_state=ReviewState.CHANGED)
    tool(files, "gone", READ_ONLY, available=False)
    tool(server("off", enabled=False), "hidden", READ_ONLY)

    picker = picker_of(admin_client.get(reverse("operator-create")))

    assert picker == {"files": [(READ, ["kept"])]}


def test_a_tool_with_a_persons_intent_override_is_listed_under_that_intent(
    admin_client: Client, admin_user: User
) -> None:
    files = server("files")
    tool(files, "list", READ_ONLY)
    set_tool_intent(tool(files, "sudo-read", READ_ONLY), "elevate", actor=admin_user)
    set_tool_intent(tool(files, "wipe", DESTRUCTIVE), "read", actor=admin_user)

    picker = picker_of(admin_client.get(reverse("operator-create")))

    assert picker == {"files": [(READ, ["list", "wipe"]), (ELEVATE, ["sudo-read"])]}


def queries_to_render(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def add_tools(count: int, start: int) -> list[Tool]:
    """`count` tools spread over three servers and every intent."""
    servers = [
        MCPServer.objects.get_or_create(name=f"srv-{i}", transport=Transport.STDIO, trusted=True)[0] for i in range(3)
    ]
    hints = [READ_ONLY, DESTRUCTIVE, {}]
    made = []
    for n in range(start, start + count):
        made.append(tool(servers[n % 3], f"t{n:02d}", hints[n % 3]))
        if n % 5 == 0:
            made[-1].intent_override = "elevate"
            made[-1].save(update_fields=["intent_override"])
    return made


def test_rendering_the_form_takes_as_many_queries_for_30_tools_as_for_5(
    admin_client: Client, provider: Provider
) -> None:
    operator = Operator.objects.create(name="watcher", provider=provider)
    operator.tools.set(add_tools(5, start=0))
    few_new = queries_to_render(admin_client, reverse("operator-create"))
    few_edit = queries_to_render(admin_client, reverse("operator-edit", args=[operator.pk]))

    operator.tools.add(*add_tools(25, start=5))
    many_new = queries_to_render(admin_client, reverse("operator-create"))
    many_edit = queries_to_render(admin_client, reverse("operator-edit", args=[operator.pk]))

    assert (many_new, many_edit) == (few_new, few_edit)
    listed = picker_of(admin_client.get(reverse("operator-edit", args=[operator.pk])))
    assert sum(len(labels) for groups in listed.values() for _, labels in groups) == 30


def form_data(provider: Provider, tools: list[Tool], **overrides: object) -> dict[str, object]:
    data = {
        "name": "fixer",
        "description": "Fixes things.",
        "system_prompt": "",
        "provider": provider.pk,
        "model": "",
        "tools": [t.pk for t in tools],
        "ceiling": "exec",
        "jit_mode": "strict",
        "max_steps": 20,
        "token_budget": 200000,
        "cost_budget": "0",
        "enabled": "on",
    }
    data.update(overrides)
    return data


def test_posting_the_form_assigns_the_chosen_tools(admin_client: Client, provider: Provider) -> None:
    files = server("files")
    listing, writing, running = tool(files, "list", READ_ONLY), tool(files, "write", DESTRUCTIVE), tool(files, "run")

    response = admin_client.post(reverse("operator-create"), form_data(provider, [listing, running]))

    assert response.status_code == 302 and response.url == reverse("operators")
    operator = Operator.objects.get(name="fixer")
    assert set(operator.tools.all()) == {listing, running}

    response = admin_client.post(reverse("operator-edit", args=[operator.pk]), form_data(provider, [writing]))

    assert response.status_code == 302
    assert list(operator.tools.all()) == [writing]
    page = admin_client.get(reverse("operator-edit", args=[operator.pk])).content.decode()
    ticked = re.findall(r'<input type="checkbox" name="tools" value="(\d+)"[^>]*\bchecked\b', page)
    assert ticked == [str(writing.pk)]


def test_a_withdrawn_tool_cannot_be_posted(admin_client: Client, provider: Provider) -> None:
    withdrawn = tool(server("files"), "changed", READ_ONLY, review_state=ReviewState.CHANGED)

    response = admin_client.post(reverse("operator-create"), form_data(provider, [withdrawn]))

    assert response.status_code == 200
    assert "is not one of the available choices" in response.content.decode()
    assert not Operator.objects.exists()


def test_editing_keeps_the_tools_the_form_could_not_offer(admin_client: Client, provider: Provider) -> None:
    """A tool gone for now (its server is down) or withdrawn until re-reviewed stays assigned through an edit."""
    files = server("files")
    kept, gone, changed = tool(files, "list", READ_ONLY), tool(files, "gone"), tool(files, "changed")
    operator = Operator.objects.create(name="fixer", provider=provider)
    operator.tools.set([kept, gone, changed])
    Tool.objects.filter(pk=gone.pk).update(available=False)
    Tool.objects.filter(pk=changed.pk).update(review_state=ReviewState.CHANGED)

    response = admin_client.post(reverse("operator-edit", args=[operator.pk]), form_data(provider, []))

    assert response.status_code == 302
    assert set(operator.tools.all()) == {gone, changed}  # `list` was unticked; the two it never showed remain
