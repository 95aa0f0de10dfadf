"""The Operator form's tool picker, as the page gives it to tool-picker.js: a labelled filter box, a labelled
"select all" per server, and each tool's checkbox inside its own label with the words the filter searches."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.operators.test_operator_form import READ_ONLY, server, tool
from tests.tools.test_catalogue_page import unlabelled

pytestmark = pytest.mark.django_db


def test_the_picker_has_a_filter_box_and_a_select_all_per_server_each_labelled(admin_client: Client) -> None:
    files = server("files")
    reading = tool(files, "read_file", READ_ONLY, description="Read a FILE's content.")
    tool(server("docker"), "ps", READ_ONLY)

    page = admin_client.get(reverse("operator-create")).content.decode()

    assert unlabelled(page) == []  # every box, the filter and each "select all" included
    assert '<label for="tool-filter">Find a tool</label>' in page
    assert re.findall(r"data-select-all> Select all of (\w+)</label>", page) == ["docker", "files"]
    item = r'<li data-search="([^"]*)"><label class="inline-check" for="(\w+)"[^>]*>\s*'
    box = re.search(item + rf'<input[^>]*value="{reading.pk}"[^>]*id="(\w+)"', page)
    assert box, "the checkbox is not inside its label"
    assert box.group(2) == box.group(3)
    assert box.group(1) == "read_file read a file&#x27;s content."  # what the filter matches, lower-cased
    assert "vigilus/tool-picker.js" in page
