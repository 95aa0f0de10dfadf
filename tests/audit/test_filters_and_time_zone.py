"""The Audit page's filters each have a label, and times are shown, typed and read in the time zone in use
(the site's, VIGILUS_TIME_ZONE), which the page names."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse
from django.utils import timezone

from audit.services import record
from tests.tools.test_catalogue_page import unlabelled

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.audit.urls")]


def test_every_filter_has_a_label(viewer_client: Client) -> None:
    page = viewer_client.get(reverse("audit")).content.decode()

    assert unlabelled(page) == []
    labels = re.findall(r'<label for="id_\w+">([^<]+)</label>', page)
    assert labels == [
        "Operator or person:",
        "Run:",
        "Tool:",
        "Intent:",
        "Decision:",
        "Event:",
        "From (UTC):",
        "To (UTC):",
    ]


@override_settings(TIME_ZONE="Pacific/Auckland")
def test_times_are_shown_in_the_sites_time_zone_which_the_page_names(viewer_client: Client) -> None:
    entry = record("backup.finished", actor="alice", actor_kind="user")
    page = viewer_client.get(reverse("audit")).content.decode()

    local = timezone.localtime(entry.time, timezone.get_current_timezone())
    assert str(local.tzinfo) == "Pacific/Auckland"
    cell = re.search(r'<td data-label="Time \(Pacific/Auckland\)"><time datetime="([^"]+)">([^<]+)</time>', page)
    assert cell, "no time cell naming the zone"
    assert cell.group(2) == local.strftime("%Y-%m-%d %H:%M:%S")
    assert datetime.fromisoformat(cell.group(1)) == entry.time and cell.group(1).endswith("+00:00")  # in UTC
    assert '<th>Time <span class="muted">(Pacific/Auckland)</span></th>' in page
    assert ">From (Pacific/Auckland):</label>" in page


@override_settings(TIME_ZONE="Europe/Berlin")
def test_a_time_filter_is_read_in_that_zone_and_comes_back_in_its_box(viewer_client: Client) -> None:
    record("early")
    middle = timezone.now()
    late = record("late")
    berlin = timezone.get_current_timezone()
    # The boundary as a person in Berlin types it: read as UTC it would lie an hour or two later, after both.
    since = timezone.localtime(middle, berlin).strftime("%Y-%m-%dT%H:%M:%S.%f")

    response = viewer_client.get(reverse("audit"), {"since": since})

    assert [entry.event for entry in response.context["page"].entries] == ["late"]
    shown = timezone.localtime(late.time, berlin).strftime("%Y-%m-%d %H:%M:%S")
    assert f">{shown}</time>" in response.content.decode()

    # What the browser's datetime-local box sent comes back in it.
    page = viewer_client.get(reverse("audit"), {"since": "2025-01-15T12:00"}).content.decode()
    assert 'type="datetime-local" name="since" value="2025-01-15T12:00"' in page
