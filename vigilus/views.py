"""The dashboard shell: login, home, health, settings and users. Thin: the verbs live in services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from vigilus import health, services
from vigilus.forms import SiteSettingsForm, ThrottledAuthenticationForm, UserCreateForm, UserRoleForm
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


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, body = health.report()
    return JsonResponse(body, status=200 if healthy else 503)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "vigilus/home.html")


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
    users = User.objects.order_by("username").prefetch_related("groups")
    context = {
        "form": form,
        "can_edit": can_edit,
        "users": [(user, services.role_of(user)) for user in users],
        "user_form": UserCreateForm(),
        "role_form": UserRoleForm(),
    }
    return render(request, "vigilus/settings.html", context)


@require_POST
@admin_required
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST)
    if form.is_valid():
        try:
            user, generated = services.create_user(
                form.cleaned_data["username"], role=form.cleaned_data["role"], password=form.cleaned_data["password"]
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
        services.set_role(user, form.cleaned_data["role"])
        messages.success(request, f"{user.username} is now {form.cleaned_data['role']}.")
    return redirect("settings")


@require_POST
@admin_required
def user_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    if user == request.user:
        messages.error(request, "You cannot deactivate yourself.")
    else:
        services.deactivate_user(user)
        messages.success(request, f"{user.username} can no longer log in.")
    return redirect("settings")
