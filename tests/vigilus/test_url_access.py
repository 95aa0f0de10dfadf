"""Every URL the site answers needs a login, except a short, deliberate allow-list.

The whole URL resolver is walked (includes and the Django admin too), a concrete URL is built for
every pattern, and each is requested anonymously with GET and POST. A pattern for which no URL can
be built fails the test: nothing is skipped silently.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from django.apps import apps
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, converters, get_resolver, path, resolve, reverse
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RoutePattern
from django.utils.regex_helper import normalize

import vigilus.urls

# URL names (namespace:name) that anyone may reach without logging in. Add to this deliberately:
# each entry is a page an anonymous visitor must see (or a webhook that checks its own token).
ANONYMOUS_URL_NAMES = frozenset(
    {
        "login",  # the dashboard's login page
        "admin:login",  # the Django admin's own login page
        "oidc-authenticate",  # single sign-on's first step: off to the provider (404 while none is configured)
        "oidc-callback",  # single sign-on's last step: back from the provider, proven by state, nonce and PKCE
        "healthz",  # liveness for Docker and monitoring
        "webhook-receive",  # inbound alerts: refused (403) without the webhook's own token
        "metrics",  # Prometheus: refused (401) without its own bearer token, 404 while none is configured
    }
)
# Static files are served by WhiteNoise before URL resolution; they carry no secrets.
ANONYMOUS_PATH_PREFIXES = ("/static/",)
# The HTTP API answers 401 itself (a login redirect means nothing to a script): anything else there is a leak.
API_PREFIX = "/api/"


@dataclass(frozen=True)
class Endpoint:
    url: str
    name: str  # "namespace:name", or the route when the pattern is unnamed
    route: str

    @property
    def is_admin(self) -> bool:
        return self.name.startswith("admin:") or self.route.startswith("admin/")


def _candidates(pattern: object, param: str) -> list[str]:
    if isinstance(pattern, RoutePattern) and param in pattern.converters:
        converter = pattern.converters[param]
        if isinstance(converter, converters.IntConverter):
            return ["1"]
        if isinstance(converter, converters.UUIDConverter):
            return [str(uuid.UUID(int=1))]
        return ["x"]  # str, slug, path and custom converters
    # A regex group has no converter: try the usual values, then app labels (the admin's app index).
    return ["1", "x", *(config.label for config in apps.get_app_configs())]


def _pieces(pattern: object) -> list[str]:
    """Every way to write one pattern level as text, with its parameters filled in."""
    options = []
    for template, params in normalize(pattern.regex.pattern):
        for values in itertools.product(*(_candidates(pattern, p) for p in params)):
            options.append(template % dict(zip(params, values, strict=True)))
    return options


def _join_route(route: str, more: str) -> str:
    return URLResolver._join_route(route, more) if route else more


def _walk(resolver: URLResolver, chain: tuple, namespaces: tuple[str, ...]) -> Iterator[tuple[tuple, str, str]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            more = (entry.namespace,) if entry.namespace else ()
            yield from _walk(entry, (*chain, entry.pattern), namespaces + more)
        elif isinstance(entry, URLPattern):
            full = (*chain, entry.pattern)
            route = ""
            for pattern in full:
                route = _join_route(route, str(pattern))
            name = ":".join((*namespaces, entry.name)) if entry.name else route
            yield full, name, route
        else:
            raise AssertionError(f"unknown URL entry {entry!r}")


def endpoints(urlconf: object = None) -> tuple[list[Endpoint], list[str]]:
    """(an Endpoint per pattern in the resolver, the routes no concrete URL could be built for)."""
    found, unbuildable = [], []
    for chain, name, route in _walk(get_resolver(urlconf), (), ()):
        per_level = [_pieces(pattern) for pattern in chain]
        for parts in itertools.product(*per_level):
            url = "/" + "".join(parts)
            try:
                match = resolve(url, urlconf)
            except Resolver404:
                continue
            if match.route == route:
                found.append(Endpoint(url=url, name=name, route=route))
                break
        else:
            unbuildable.append(route)
    return found, unbuildable


def _is_login_redirect(response: HttpResponse, login_path: str, url: str) -> bool:
    if response.status_code not in (301, 302, 303, 307, 308):
        return False
    location = urlsplit(response["Location"])
    return location.path == login_path and parse_qs(location.query).get("next") == [url]


def anonymous_leaks(urlconf: object = None) -> list[str]:
    """Every (method, URL) outside the allow-list that an anonymous visitor gets without a login prompt."""
    found, unbuildable = endpoints(urlconf)
    problems = [f"no concrete URL could be built for route {route!r}" for route in unbuildable]
    client = Client()
    dashboard_login = reverse("login", urlconf)
    admin_login = reverse("admin:login", urlconf)
    for endpoint in found:
        if endpoint.name in ANONYMOUS_URL_NAMES or endpoint.url.startswith(ANONYMOUS_PATH_PREFIXES):
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(endpoint.url)
            if endpoint.url.startswith(API_PREFIX):
                if response.status_code != 401:
                    problems.append(
                        f"{method.upper()} {endpoint.url} ({endpoint.name}) answered {response.status_code}"
                    )
                continue
            if _is_login_redirect(response, dashboard_login, endpoint.url):
                continue
            if endpoint.is_admin and (
                _is_login_redirect(response, admin_login, endpoint.url) or response.status_code in (401, 403)
            ):
                continue
            problems.append(
                f"{method.upper()} {endpoint.url} ({endpoint.name}) answered {response.status_code} "
                f"{response.get('Location', '')} to an anonymous visitor"
            )
    return problems


def test_every_url_outside_the_allow_list_asks_anonymous_visitors_to_log_in(db: None) -> None:
    assert anonymous_leaks() == []


def test_the_walk_covers_the_dashboard_and_the_admin(db: None) -> None:
    found, unbuildable = endpoints()
    assert unbuildable == []
    names = {e.name for e in found}
    # The pages of the dashboard shell and admin pages with int, path and regex parameters.
    assert {"home", "settings", "user-create", "user-role", "user-deactivate", "health-panel", "logout"} <= names
    assert {"admin:index", "admin:auth_user_change", "admin:view_on_site", "admin:app_list"} <= names
    assert "/settings/users/1/role/" in {e.url for e in found}


def test_the_walk_covers_the_api(db: None) -> None:
    """Every endpoint under /api/v1/ is walked, each answering an anonymous client 401 (never 200, never a redirect)."""
    found, _ = endpoints()
    api = {e.name for e in found if e.url.startswith(API_PREFIX)}
    assert {
        "api:submit_task",
        "api:get_run",
        "api:list_runs",
        "api:list_requests",
        "api:approve_request",
        "api:deny_request",
        "api:list_operators",
        "api:list_tools",
        "api:list_providers",
        "api:openapi-json",
        "api:openapi-view",
    } <= api
    assert "/api/v1/runs/1" in {e.url for e in found}


def test_every_allow_listed_name_exists() -> None:
    """A stale entry would be a hole waiting for a future page that reuses the name."""
    found, _ = endpoints()
    assert {e.name for e in found} >= ANONYMOUS_URL_NAMES


@login_not_required
def _forgotten_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("inventory of every server")


class UrlconfWithAnOpenView:
    urlpatterns = [*vigilus.urls.urlpatterns, path("inventory/", _forgotten_view, name="inventory")]


def test_a_new_view_that_skips_the_login_is_reported(db: None, settings: object) -> None:
    settings.ROOT_URLCONF = UrlconfWithAnOpenView
    leaks = anonymous_leaks()
    assert any("/inventory/" in leak for leak in leaks), leaks
    assert len(leaks) == 2  # GET and POST of that one view, nothing else


def test_without_the_login_middleware_every_page_is_reported(db: None, settings: object) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("LoginRequiredMiddleware")]
    leaks = anonymous_leaks()
    assert any(leak.startswith("GET /settings/ ") for leak in leaks), leaks
    assert any(leak.startswith("POST /settings/users/ ") for leak in leaks), leaks


def test_login_page_is_reachable_anonymously(db: None) -> None:
    response = Client().get(reverse("login"))
    assert response.status_code == 200
    assert 'type="password"' in response.content.decode()


def test_admin_login_page_is_reachable_anonymously(db: None) -> None:
    response = Client().get(reverse("admin:login"))
    assert response.status_code == 200
    assert 'type="password"' in response.content.decode()


def test_healthz_is_reachable_anonymously_and_answers_json(db: None) -> None:
    response = Client().get(reverse("healthz"))
    assert response.status_code in (200, 503)
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert {"status", "database", "redis", "workers"} <= body.keys()


def test_static_files_are_reachable_anonymously(db: None) -> None:
    response = Client().get("/static/vigilus/app.css")
    assert response.status_code == 200
    assert "text/css" in response["Content-Type"]


def test_the_webhook_endpoint_refuses_anonymous_posts_without_its_token(db: None) -> None:
    from operators.models import Run

    response = Client().post("/hooks/anything/", data="{}", content_type="application/json")
    assert response.status_code == 403 and response.json() == {"error": "unknown webhook or wrong token"}
    assert not Run.objects.exists()
