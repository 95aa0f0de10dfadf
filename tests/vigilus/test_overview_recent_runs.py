"""The Overview's Recent list lists finished runs; while a run is active and none has finished it says so,
rather than "No runs yet" under a run that is plainly there."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from operators.choices import RunStatus
from operators.models import Run

pytestmark = pytest.mark.django_db


def recent(page: str) -> str:
    return page[page.index("<h3>Recent</h3>") : page.index('id="overview-health"')]


def test_with_no_run_at_all_it_offers_to_start_one(admin_client: Client) -> None:
    section = recent(admin_client.get(reverse("home")).content.decode())
    assert "No runs yet" in section and "give Vigilus a task" in section


def test_while_the_only_run_is_active_it_says_none_has_finished_yet(admin_client: Client) -> None:
    run = Run.objects.create(task="check the disks", status=RunStatus.RUNNING)

    page = admin_client.get(reverse("home")).content.decode()

    assert f'href="{reverse("run-detail", args=[run.pk])}"' in page  # under Active
    assert "No finished runs yet." in recent(page) and "No runs yet" not in page

    Run.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED)
    section = recent(admin_client.get(reverse("home")).content.decode())
    assert "check the disks" in section and "No finished runs yet" not in section
