"""What a person sees when a page is not theirs, not there, or broken: the dashboard's own pages, not Django's."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path

from vigilus import urls as vigilus_urls

pytestmark = pytest.mark.django_db


def test_a_page_above_your_role_says_so_inside_the_dashboard(viewer_client: Client) -> None:
    response = viewer_client.post("/settings/users/", {"username": "x", "role": "viewer"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "<h1>Not allowed</h1>" in page and "<nav>" in page and 'href="/"' in page


def test_a_missing_page_names_the_address_inside_the_dashboard(viewer_client: Client) -> None:
    response = viewer_client.get("/runs/987654/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Not found</h1>" in page and "/runs/987654/" in page and "<nav>" in page


def broken(request: object) -> None:
    raise RuntimeError("a bug")


urlpatterns = [*vigilus_urls.urlpatterns, path("broken/", broken)]


@pytest.mark.urls(__name__)
def test_a_server_error_is_a_plain_styled_page_without_the_traceback(admin_client: Client) -> None:
    admin_client.raise_request_exception = False
    response = admin_client.get("/broken/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong" in page and "app.css" in page and "a bug" not in page
