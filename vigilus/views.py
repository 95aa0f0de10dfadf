"""The dashboard shell: login, home, health, settings and users. Thin: the verbs live in services."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from vigilus import health, metrics, overview, services
from vigilus.forms import (
    ApiTokenForm,
    SiteSettingsForm,
    ThrottledAuthenticationForm,
    UserCreateForm,
    UserRoleForm,
    add_service_errors,
)
from vigilus.models import ApiToken
from vigilus.oidc import config as oidc_config
from vigilus.permissions import admin_required


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    template_name = "vigilus/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form: ThrottledAuthenticationForm) -> HttpResponse:
        response = super().form_invalid(form)
        if any(e.code == "locked_out" for e in form.non_field_errors().as_data()):
            response.status_code = 429
        return response

    def get_context_data(self, **kwargs: object) -> dict[str, object]:
        """The password form unless VIGILUS_LOCAL_LOGIN=false, and the single sign-on button when configured."""
        context = super().get_context_data(**kwargs)
        sso = oidc_config.current()
        context["local_login"] = settings.LOCAL_LOGIN
        context["sso_name"] = sso.name if sso else ""
        return context

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not settings.LOCAL_LOGIN:  # no password is checked, and no failure counted
            return self.render_to_response(self.get_context_data(password_login_off=True), status=403)
        return super().post(request, *args, **kwargs)


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, body = health.report()
    return JsonResponse(body, status=200 if healthy else 503)


@login_not_required  # Prometheus logs in with its own bearer token, checked here
@never_cache
@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """GET /metrics for Prometheus: 404 while no token is configured, 401 without the right bearer token."""
    expected = settings.METRICS_TOKEN
    if not expected:
        raise Http404("Metrics are off: set VIGILUS_METRICS_TOKEN (or VIGILUS_METRICS_TOKEN_FILE) to turn them on.")
    presented = metrics.presented_token(request.headers.get("Authorization", ""))
    if not metrics.token_matches(presented, expected):
        challenge, message = (
            'Bearer realm="vigilus metrics"',
            "A bearer token is required: `Authorization: Bearer TOKEN`.",
        )
        if presented:  # RFC 6750: a token was sent and refused
            challenge, message = challenge + ', error="invalid_token"', "The bearer token is not the metrics token."
        return HttpResponse(
            message + "\n",
            status=401,
            content_type="text/plain; charset=utf-8",
            headers={"WWW-Authenticate": challenge},
        )
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "vigilus/home.html", {"overview": overview.build(request.user)})


@never_cache
@require_GET
def health_panel(request: HttpRequest) -> HttpResponse:
    healthy, body = health.report()
    return render(request, "vigilus/partials/health.html", {"healthy": healthy, "health": body})


def settings_page(request: HttpRequest) -> HttpResponse:
    row = services.site_settings()
    can_edit = services.is_admin(request.user)
    form = SiteSettingsForm(request.POST or None, instance=row)
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("Only admins may change settings.")
        if form.is_valid():
            # An empty secret box keeps the stored value (write-only field).
            changes = {k: v for k, v in form.cleaned_data.items() if not (k == "notification_urls" and v is None)}
            services.update_site_settings(actor=request.user, **changes)
            messages.success(request, "Settings saved.")
            return redirect("settings")
    return render(request, "vigilus/settings.html", _settings_context(request, form=form, can_edit=can_edit))


def _settings_context(request: HttpRequest, **extra: object) -> dict[str, object]:
    users = User.objects.order_by("username").prefetch_related("groups")
    tokens = ApiToken.objects.filter(user_id=request.user.pk).select_related("user").order_by("revoked_at", "name")
    context: dict[str, object] = {
        "users": [(user, services.role_of(user)) for user in users],
        "user_form": UserCreateForm(),
        "role_form": UserRoleForm(),
        "tokens": [(token, services.token_role(token)) for token in tokens],
        "token_form": ApiTokenForm(),
    }
    context.update(extra)
    return context


@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    """Make an API token of the logged-in person's. The page is rendered here, not redirected to: the token is shown
    this once, and a message would keep it in the session table."""
    form = ApiTokenForm(request.POST)
    new_token = None
    if form.is_valid():
        try:
            token, clear = services.create_token(
                request.user,
                name=form.cleaned_data["name"],
                role=form.cleaned_data["role"],
                expires_days=form.cleaned_data["expires_days"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            new_token = {"name": token.name, "value": clear}
            form = ApiTokenForm()
    return _settings_showing_a_secret(request, token_form=form, new_token=new_token)


def _settings_showing_a_secret(request: HttpRequest, **extra: object) -> HttpResponse:
    """The Settings page rendered in answer to a POST that made a secret to show once (a token, a password): not
    redirected to, since a message would keep the secret in the session table, and never cached."""
    form = SiteSettingsForm(instance=services.site_settings())
    context = _settings_context(request, form=form, can_edit=services.is_admin(request.user), **extra)
    response = render(request, "vigilus/settings.html", context)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the person's own tokens (an admin may revoke anyone's; `tokens revoke` does it by name)."""
    token = get_object_or_404(ApiToken, pk=pk)
    try:
        services.revoke_token(token, actor=request.user)  # PermissionDenied (403) for another person's token
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Revoked the token {token.name}.")
    return redirect("settings")


@require_POST
@admin_required
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST)
    if form.is_valid():
        try:
            user, generated = services.create_user(
                form.cleaned_data["username"],
                role=form.cleaned_data["role"],
                password=form.cleaned_data["password"],
                actor=request.user,
            )
        except ValidationError as exc:
            for errors in exc.message_dict.values():
                for error in errors:
                    messages.error(request, error)
        else:
            note = f" Password (shown once): {generated}" if generated else ""
            messages.success(request, f"Created {user.username}.{note}")
    else:
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
    return redirect("settings")


@require_POST
@admin_required
def user_role(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    form = UserRoleForm(request.POST)
    if form.is_valid():
        services.set_role(user, form.cleaned_data["role"], actor=request.user)
        messages.success(request, f"{user.username} is now {form.cleaned_data['role']}.")
    return redirect("settings")


@require_POST
@admin_required
def user_password_reset(request: HttpRequest, pk: int) -> HttpResponse:
    """An admin gives someone a new, generated password (a forgotten one), shown once on the page; the person's
    sessions end. Audited, never the password."""
    person = get_object_or_404(User, pk=pk)
    generated = services.set_password(person, actor=request.user)
    if person == request.user:
        update_session_auth_hash(request, person)
    return _settings_showing_a_secret(request, new_password={"username": person.username, "value": generated})


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change your own password: the old one is asked for, the new one checked by the password validators."""

    template_name = "vigilus/password_change.html"
    success_url = reverse_lazy("settings")

    def form_valid(self, form: auth_views.PasswordChangeForm) -> HttpResponse:
        services.set_password(form.user, actor=form.user, password=form.cleaned_data["new_password1"])
        update_session_auth_hash(self.request, form.user)  # this session stays; the others end
        messages.success(self.request, "Your password was changed; your other sessions have ended.")
        return redirect(self.get_success_url())


@require_POST
@admin_required
def user_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    if user == request.user:
        messages.error(request, "You cannot deactivate yourself.")
    else:
        services.deactivate_user(user, actor=request.user)
        messages.success(request, f"{user.username} can no longer log in.")
    return redirect("settings")
