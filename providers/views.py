"""Providers in the dashboard. Checks that call a model run on a worker; listing models is plain HTTP."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from providers import services
from providers.choices import ProviderCheck
from providers.discovery import list_models
from providers.errors import ProviderError
from providers.forms import ProviderForm
from providers.kinds import KINDS
from providers.models import Provider
from vigilus.forms import add_service_errors
from vigilus.permissions import admin_required
from vigilus.services import is_admin


@require_GET
def provider_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "providers/list.html", {"providers": Provider.objects.all(), "can_edit": is_admin(request.user)}
    )


def _save(request: HttpRequest, form: ProviderForm, provider: Provider | None) -> Provider:
    data = dict(form.cleaned_data)
    if provider is None:
        data["api_key"] = data["api_key"] or ""
        return services.create_provider(actor=request.user, **data)
    return services.update_provider(provider, actor=request.user, **data)


# The value of the form's "Save & test" button (name "then"): save, then run the connection test.
SAVE_AND_TEST = "test"


@admin_required
def provider_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=pk) if pk else None
    form = ProviderForm(request.POST or None, instance=provider)
    if request.method == "POST" and form.is_valid():
        try:
            saved = _save(request, form, provider)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if request.POST.get("then") == SAVE_AND_TEST:
                services.start_check(saved, ProviderCheck.CONNECTION)
                messages.success(request, f"Saved {saved.name}; its connection test runs on a worker.")
                return redirect("provider-edit", saved.pk)
            messages.success(request, f"Saved {saved.name}. Nothing was sent to the endpoint; use Test to try it.")
            return redirect("providers")
    defaults = {kind: spec.default_base_url for kind, spec in KINDS.items() if spec.default_base_url}
    context = {"form": form, "provider": provider, "default_urls": defaults, "save_and_test": SAVE_AND_TEST}
    return render(request, "providers/form.html", context)


@require_POST
@admin_required
def model_picker(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """The models of the endpoint the provider form describes (saved or not), to pick the default model from."""
    provider = get_object_or_404(Provider, pk=pk) if pk else None
    names, error = [], ""
    try:
        names = services.models_at(
            kind=request.POST.get("kind", ""),
            base_url=request.POST.get("base_url", ""),
            api_key=request.POST.get("api_key", ""),
            provider=provider,
        )
    except ValidationError as exc:
        error = " ".join(exc.messages)
    except ProviderError as exc:
        error = f"{exc.label}: {exc}"
    context = {"models": names, "error": error, "current": request.POST.get("default_model", "").strip()}
    return render(request, "providers/partials/model_picker.html", context)


@require_POST
@admin_required
def provider_delete(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=pk)
    services.remove_provider(provider, actor=request.user)
    messages.success(request, f"Removed {provider.name}.")
    return redirect("providers")


def _status(request: HttpRequest, provider: Provider) -> HttpResponse:
    return render(request, "providers/partials/status.html", {"provider": provider})


@require_POST
@admin_required
def provider_check(request: HttpRequest, pk: int, check: str) -> HttpResponse:
    """Start a connection test ("connection") or tool-calling check ("tools") on a worker."""
    provider = get_object_or_404(Provider, pk=pk)
    if check not in ProviderCheck.values:
        raise Http404("Unknown check.")
    return _status(request, services.start_check(provider, ProviderCheck(check)))


@require_GET
def provider_status(request: HttpRequest, pk: int) -> HttpResponse:
    return _status(request, get_object_or_404(Provider, pk=pk))


def _models(provider: Provider) -> tuple[list[str], str]:
    try:
        return list_models(provider), ""
    except ProviderError as exc:
        return [], f"{exc.label}: {exc}"


@require_GET
def provider_models(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=pk)
    names, error = _models(provider)
    return render(request, "providers/partials/models.html", {"provider": provider, "models": names, "error": error})


@require_GET
def model_options(request: HttpRequest) -> HttpResponse:
    """<option>s of a provider's models, for any model picker (a <datalist> filled by htmx)."""
    provider = get_object_or_404(Provider, pk=request.GET.get("provider") or 0)
    names, error = _models(provider)
    return render(request, "providers/partials/model_options.html", {"models": names, "error": error})
