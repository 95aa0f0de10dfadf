"""The HTTP API under /api/v1/ (django-ninja): who is calling, what they may do, errors, throttling, auditing.

Each app keeps its endpoints in its own `api.py` (a ninja Router calling the app's services); `build_api()` mounts
them. A caller is a personal access token (`Authorization: Bearer vgl_...`) or, for the docs page in a browser, a
dashboard session. Either acts with a role of `TokenRole`: a token's own role capped by its person's, so a token never
does more than its person may in the dashboard.

Every URL under /api/ answers 401 without a valid token or session (the dashboard's login redirect would make no
sense to a script), so the API's views are exempt from LoginRequiredMiddleware and check for themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as ServiceError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError
from ninja.errors import ValidationError as InputError
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder
from ninja.security import HttpBearer, SessionAuth
from ninja.throttling import SimpleRateThrottle

from audit.choices import ActorKind
from audit.events import AuditEvent
from vigilus.choices import TokenRole
from vigilus.models import ApiToken
from vigilus.services import authenticate_token, role_of, token_role

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
UNAUTHORIZED = (
    "A valid API token is required: send `Authorization: Bearer vgl_...` (make one in Settings > API tokens or with "
    "`vigilus tokens add NAME --role viewer --as USER`)."
)


# --- who is calling ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCaller:
    """The person behind a request, the role it acts with, and the token it came with (None: a dashboard session)."""

    user: User
    role: TokenRole | None
    token: ApiToken | None = None

    @property
    def via(self) -> str:
        """How the request was authenticated, as the audit log and a run's source name it."""
        return f"token {self.token.name}" if self.token else "session"

    def __str__(self) -> str:
        """The throttle's key: one budget per token (per person for a session)."""
        return f"token-{self.token.pk}" if self.token else f"session-{self.user.pk}"


class TokenAuth(HttpBearer):
    """`Authorization: Bearer vgl_...`: a live token of an active person."""

    def authenticate(self, request: HttpRequest, token: str) -> ApiCaller | None:
        found = authenticate_token(token.strip())
        if found is None:
            return None
        request.user = found.user  # what Django and the services see as the acting person
        return ApiCaller(user=found.user, role=token_role(found), token=found)


class DashboardSessionAuth(SessionAuth):
    """A logged-in dashboard session (the docs page's "Try it out"); CSRF-checked for changes. A request without a
    session cookie is simply not this kind of caller: no CSRF refusal in place of the 401 a script should get."""

    def _get_key(self, request: HttpRequest) -> str | None:
        if self.param_name not in request.COOKIES:
            return None
        return super()._get_key(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> ApiCaller | None:
        if key is None or not request.user.is_authenticated or not request.user.is_active:
            return None
        return ApiCaller(user=request.user, role=TokenRole.for_person(role_of(request.user)))


AUTH = [TokenAuth(), DashboardSessionAuth()]


def caller_of(request: HttpRequest) -> ApiCaller:
    return request.auth  # type: ignore[attr-defined]  # set by ninja once one of AUTH accepted the request


def require_role(request: HttpRequest, needed: TokenRole, doing: str) -> User:
    """The acting person, when the caller's role is at least `needed`; else 403 saying what was missing."""
    caller = caller_of(request)
    if caller.role is None or caller.role.rank < needed.rank:
        kind = f"the token {caller.token.name!r}" if caller.token else "this session"
        has = f"acts as {caller.role.value}" if caller.role else "has no role"
        raise AuthorizationError(message=f"{doing} needs the {needed.value} role; {kind} {has}.")
    return caller.user


# --- throttling ----------------------------------------------------------------------------------


class PerCallerThrottle(SimpleRateThrottle):
    """VIGILUS_API_RATE_LIMIT requests a minute per token (per person for a session), counted in the shared cache so
    every web process keeps one budget. The limit is read on each request, so settings overrides apply at once."""

    scope = "api"

    def __init__(self) -> None:  # the rate comes from the settings on each request (see allow_request)
        self.rate = None

    def allow_request(self, request: HttpRequest) -> bool:
        self.num_requests, self.duration = settings.API_RATE_LIMIT, 60
        return super().allow_request(request)

    def get_cache_key(self, request: HttpRequest) -> str | None:
        caller = getattr(request, "auth", None)
        return f"api_throttle_{caller}" if caller is not None else None


# --- errors --------------------------------------------------------------------------------------


def error_response(status: int, message: str, field: str | None = None, **headers: str) -> JsonResponse:
    """`{"detail": message, "field": name}`: the message names the field too, for people reading it."""
    body: dict[str, Any] = {"detail": message}
    if field:
        body["field"] = field
    response = JsonResponse(body, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _input_field(location: tuple[Any, ...]) -> str:
    """`task` from pydantic's ("body", "payload", "task"); `body` when the body as a whole is wrong or missing."""
    names = [str(part) for part in location[1:] if part != "payload"]
    return ".".join(names) or str(location[0] if location else "body")


def _bad_input(request: HttpRequest, exc: InputError) -> HttpResponse:
    problems = [(_input_field(tuple(error.get("loc", ()))), error.get("msg", "invalid")) for error in exc.errors]
    message = "; ".join(f"{field}: {text}" for field, text in problems)
    return error_response(400, message, problems[0][0] if problems else "body")


def _refused_by_service(request: HttpRequest, exc: ServiceError, status: int = 400) -> HttpResponse:
    """A service's ValidationError: 400 naming its field (409 for a decision taken meanwhile, see build_api)."""
    if hasattr(exc, "error_dict"):
        fields = exc.message_dict
        message = "; ".join(f"{field}: {' '.join(texts)}" for field, texts in fields.items())
        return error_response(status, message, next(iter(fields), None))
    return error_response(status, " ".join(exc.messages))


def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc, AuthenticationError):
        return _unauthorized()
    if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
        return error_response(
            400, "body: not valid JSON (send a JSON object with Content-Type: application/json).", "body"
        )
    return error_response(exc.status_code, str(exc))


def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(404, str(exc) or "Not found.")


def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return error_response(403, str(exc) or "Forbidden.")


# --- rendering and auditing ----------------------------------------------------------------------


class _CommandLineEncoder(NinjaJSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, datetime | date | time | Decimal):
            return str(o)
        return super().default(o)


class CommandLineJSON(JSONRenderer):
    """JSON written as the commands' `--json` writes it (`json.dumps(..., default=str)`: a time reads
    `2026-01-02 03:04:05.678901+00:00`), so a script reads `runs show --json` and `GET /runs/{id}` alike."""

    encoder_class = _CommandLineEncoder


def audited(run_operation: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Each request that may change something (any method but GET/HEAD/OPTIONS) by an authenticated caller leaves an
    `api.request` audit entry naming the token, whatever it answered: a refusal is worth a line too. Reads are not
    audited (a script polling a run would flood the log); the token's `last_used_at` records them."""

    @functools.wraps(run_operation)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = run_operation(request, *args, **kwargs)
        caller = getattr(request, "auth", None)
        if request.method not in SAFE_METHODS and isinstance(caller, ApiCaller):
            from audit.services import record

            record(
                AuditEvent.API_REQUEST,
                actor=caller.user.username,
                actor_kind=ActorKind.USER,
                decision="denied" if response.status_code in (401, 403) else "",
                target=f"{request.method} {request.path}",
                via=caller.via,  # "token NAME" ("token" as a key would read as a secret's and be masked)
                status=response.status_code,
            )
        return response

    return wrapper


# --- the API and its URLs ------------------------------------------------------------------------


def _authenticated(request: HttpRequest) -> ApiCaller | None:
    """The caller by token or session, outside ninja's own per-operation check (docs, wrong methods)."""
    for auth in AUTH:
        try:
            caller = auth(request)
        except HttpError:  # a session cookie without its CSRF token on a POST
            return None
        if caller is not None:
            request.auth = caller  # type: ignore[attr-defined]
            return caller
    return None


def _unauthorized() -> JsonResponse:
    return error_response(401, UNAUTHORIZED, WWW_Authenticate='Bearer realm="vigilus"')


def _docs_guard(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The schema and the docs page, for a valid token or a dashboard session only (401 otherwise)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if _authenticated(request) is None:
            return _unauthorized()
        return view(request, *args, **kwargs)

    return wrapper


def _no_method_hints(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """ninja answers a method an endpoint lacks with 405 before authenticating: an anonymous client gets 401 there
    too, so nothing under /api/ tells it more than that a token is needed."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and _authenticated(request) is None:
            return _unauthorized()
        return response

    return wrapper


@functools.cache
def build_api() -> NinjaAPI:
    """The API with every app's router mounted (built once, on first use: the routers import the apps' models)."""
    from jit.api import router as jit_router
    from jit.services import DecisionConflict
    from operators.api import router as operators_router
    from providers.api import router as providers_router
    from tools.api import router as tools_router

    api = NinjaAPI(
        title="Vigilus API",
        version="1",
        description=(
            "Give tasks, follow runs and reply to them, decide access requests and plans. Authenticate with a "
            "personal access token: `Authorization: Bearer vgl_...` (Settings > API tokens, or `vigilus tokens add`). "
            "A token acts with the lower of its own role and its person's: viewer (read), submitter (also give tasks "
            "and reply), approver (also decide access requests and plans). Errors answer "
            '`{"detail": ..., "field": ...}`: 400 bad input (the field named), 401 no valid token, 403 role too low, '
            "404 unknown, 409 already decided, 429 too many requests."
        ),
        urls_namespace="api",
        docs_url="/docs",
        docs_decorator=_docs_guard,
        auth=AUTH,
        throttle=PerCallerThrottle(),
        renderer=CommandLineJSON(),
    )
    api.add_exception_handler(InputError, _bad_input)
    api.add_exception_handler(ServiceError, _refused_by_service)
    api.add_exception_handler(DecisionConflict, functools.partial(_refused_by_service, status=409))
    api.add_exception_handler(HttpError, _http_error)
    api.add_exception_handler(Http404, _not_found)
    api.add_exception_handler(PermissionDenied, _forbidden)
    api.add_decorator(audited, mode="view")
    api.add_router("/", operators_router)
    api.add_router("/", jit_router)
    api.add_router("/", tools_router)
    api.add_router("/", providers_router)
    return api


def urls() -> tuple[list[URLPattern], str, str]:
    """The API's URLs for `path("api/v1/", ...)`: each answers 401 itself rather than redirect to the login page."""
    patterns, app_name, namespace = build_api().urls
    for pattern in patterns:
        if pattern.name == "api-root":  # ninja's placeholder at /api/v1/ (a 404): behind the same check as the docs
            pattern.callback = _docs_guard(pattern.callback)
        pattern.callback = login_not_required(_no_method_hints(pattern.callback))
    return patterns, app_name, namespace
