"""Provider verbs: create, update, remove (never contacting the endpoint), and the checks that do."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.choices import ActorKind
from audit.events import AuditEvent
from audit.services import record
from providers.choices import CheckStatus, ProviderCheck, ProviderKind
from providers.errors import NotConfigured, ProviderError
from providers.models import Provider

logger = logging.getLogger("vigilus.providers")

EDITABLE_FIELDS = ("name", "kind", "base_url", "api_key", "default_model", "context_windows", "enabled")
CONNECTION_TEST_TIMEOUT = 30.0

PING_PROMPT = "Reply with the single word: pong"
TOOL_CHECK_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_time",
        "description": "Returns the current time in the given IANA time zone.",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "description": "An IANA time zone, e.g. Europe/Berlin"}},
            "required": ["timezone"],
        },
    },
}
TOOL_CHECK_PROMPT = "What time is it in UTC right now? Use the get_current_time tool."
# The check asks as a run does: with a system prompt (every run has one) and tool_choice "auto". Some servers
# show the tools only inside the system message (llama-cpp-python's chatml-function-calling format), so a
# check without one would report a model as unable to call tools that a run would see call them.
TOOL_CHECK_SYSTEM = "You can call the functions you are given. When a question asks for one, call it."


def _validate(provider: Provider) -> None:
    """Field-named errors for everything a person can get wrong, before anything is saved."""
    try:
        provider.full_clean()
    except ValidationError as exc:
        errors = exc.message_dict
        if "kind" in errors and provider.kind not in ProviderKind.values:  # the one clear message, not two
            errors["kind"] = [m for m in errors["kind"] if m.startswith("Unknown kind")]
        raise ValidationError(errors) from None


@transaction.atomic
def create_provider(
    *,
    actor: User,
    name: str,
    kind: str,
    base_url: str = "",
    api_key: str = "",
    default_model: str = "",
    context_windows: dict[str, int] | None = None,
    enabled: bool = True,
) -> Provider:
    """Save a provider. The endpoint is not contacted: it may be set up before its host is up."""
    provider = Provider(
        name=name.strip(),
        kind=kind,
        base_url=base_url.strip(),
        api_key=api_key.strip(),
        default_model=default_model.strip(),
        context_windows=context_windows or {},
        enabled=enabled,
    )
    _validate(provider)
    provider.save()
    record(
        AuditEvent.PROVIDER_CREATED,
        actor=actor.username,
        actor_kind=ActorKind.USER,
        target=provider.name,
        kind=provider.kind,
        endpoint=provider.endpoint,
    )
    return provider


@transaction.atomic
def update_provider(provider: Provider, *, actor: User, **changes: object) -> Provider:
    """Change a provider's settings; an `api_key` of None keeps the stored key."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    if changes.get("api_key") is None:
        changes.pop("api_key", None)
    for field, value in changes.items():
        setattr(provider, field, value.strip() if isinstance(value, str) else value)
    _validate(provider)
    connection_changed = {"kind", "base_url", "api_key"} & set(changes)
    if connection_changed:
        provider.last_test_status = provider.tools_check_status = CheckStatus.UNTESTED
        provider.last_test_message = provider.tools_check_message = ""
    provider.save()
    record(
        AuditEvent.PROVIDER_CHANGED,
        actor=actor.username,
        actor_kind=ActorKind.USER,
        target=provider.name,
        fields=sorted(changes),
    )
    return provider


@transaction.atomic
def remove_provider(provider: Provider, *, actor: User) -> None:
    name = provider.name
    provider.delete()
    record(AuditEvent.PROVIDER_REMOVED, actor=actor.username, actor_kind=ActorKind.USER, target=name)


# The status field each check reports in.
CHECK_STATUS_FIELDS: dict[ProviderCheck, str] = {
    ProviderCheck.CONNECTION: "last_test_status",
    ProviderCheck.TOOLS: "tools_check_status",
}


def start_check(provider: Provider, check: ProviderCheck) -> Provider:
    """Mark the check running and queue it for a worker once the transaction commits (the web process never
    loads litellm). Returns the provider as now stored: its status says "Testing…" until the worker reports."""
    from providers import tasks

    task = tasks.test_provider_connection if check == ProviderCheck.CONNECTION else tasks.check_provider_tool_calling
    with transaction.atomic():
        Provider.objects.filter(pk=provider.pk).update(**{CHECK_STATUS_FIELDS[check]: CheckStatus.RUNNING})
        transaction.on_commit(lambda: task.delay(provider.pk))
    provider.refresh_from_db()
    return provider


def models_at(*, kind: str, base_url: str, api_key: str | None, provider: Provider | None = None) -> list[str]:
    """The models an endpoint offers, from settings not saved yet (the provider form's picker). An empty
    `api_key` uses the saved `provider`'s key. Raises ValidationError naming the field to fix first, or the
    ProviderError of the listing."""
    from providers.discovery import list_models

    key = (api_key or "").strip() or (provider.api_key if provider is not None else "")
    probe = Provider(kind=kind, base_url=(base_url or "").strip(), api_key=key)
    if kind not in ProviderKind.values:
        raise ValidationError({"kind": "Choose the kind of provider first."})
    others = [f.name for f in Provider._meta.fields if f.name not in ("kind", "base_url", "api_key")]
    probe.full_clean(exclude=others, validate_unique=False, validate_constraints=False)
    return list_models(probe)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
    model: str


def _model_for(provider: Provider, model: str | None) -> str:
    chosen = (model or provider.default_model).strip()
    if not chosen:
        raise NotConfigured(f"{provider.name} has no default model: set one, or name the model to test.")
    return chosen


def _record(provider: Provider, *, status_field: str, message_field: str, result: CheckResult) -> None:
    fields = {status_field: CheckStatus.OK if result.ok else CheckStatus.FAILED, message_field: result.message}
    if status_field == "last_test_status":
        fields["last_tested_at"] = timezone.now()
    Provider.objects.filter(pk=provider.pk).update(**fields)
    for field, value in fields.items():
        setattr(provider, field, value)


def _run_check(
    provider: Provider,
    model: str | None,
    timeout: float,
    *,
    prompt: str,
    system: str = "",
    tools: list | None,
    judge: Any,
    status_field: str,
    message_field: str,
    **options: Any,
) -> CheckResult:
    """Send one prompt, judge the answer, store the outcome on the provider, return it."""
    from providers.client import complete

    try:
        chosen = _model_for(provider, model)
        messages = [{"role": "system", "content": system}] if system else []
        completion = complete(
            provider,
            [*messages, {"role": "user", "content": prompt}],
            model=chosen,
            tools=tools,
            timeout=timeout,
            max_retries=0,
            **options,
        )
    except ProviderError as exc:
        result = CheckResult(False, f"{exc.label}: {exc}", model or provider.default_model)
    else:
        result = CheckResult(*judge(chosen, completion), chosen)
    _record(provider, status_field=status_field, message_field=message_field, result=result)
    return result


def run_connection_test(
    provider: Provider, *, model: str | None = None, timeout: float = CONNECTION_TEST_TIMEOUT
) -> CheckResult:
    """One tiny completion. The outcome is stored on the provider and returned."""

    def answered(chosen: str, completion: Any) -> tuple[bool, str]:
        from providers.context import context_window

        return True, (
            f"{chosen} answered in {completion.latency_ms} ms ({completion.usage.total_tokens} tokens): "
            f"{completion.text.strip()[:80]!r}; context window {context_window(provider, chosen).describe()}"
        )

    return _run_check(
        provider,
        model,
        timeout,
        prompt=PING_PROMPT,
        tools=None,
        judge=answered,
        status_field="last_test_status",
        message_field="last_test_message",
        max_tokens=16,
    )


def run_tool_calling_check(
    provider: Provider, *, model: str | None = None, timeout: float = CONNECTION_TEST_TIMEOUT
) -> CheckResult:
    """Does the model answer a tool-use prompt with a well-formed call? Stored on the provider and returned."""
    return _run_check(
        provider,
        model,
        timeout,
        prompt=TOOL_CHECK_PROMPT,
        system=TOOL_CHECK_SYSTEM,
        tools=[TOOL_CHECK_TOOL],
        judge=lambda chosen, completion: judge_tool_call(completion),
        status_field="tools_check_status",
        message_field="tools_check_message",
    )


def judge_tool_call(completion: object) -> tuple[bool, str]:
    """(ok, explanation) for the answer to the tool-calling prompt."""
    calls = completion.tool_calls
    if not calls:
        return False, f"answered in text instead of calling the tool: {completion.text.strip()[:80]!r}"
    call = calls[0]
    if call.name != TOOL_CHECK_TOOL["function"]["name"]:
        return False, f"called an unknown tool {call.name!r}"
    if call.error:
        return False, f"called the tool with malformed arguments: {call.error}"
    if not isinstance(call.arguments.get("timezone"), str):
        return False, f"called the tool without the required 'timezone' argument: {call.raw_arguments[:80]!r}"
    return True, f"well-formed tool call get_current_time({call.raw_arguments[:60]})"
