"""The one function the agent loop calls to talk to a model: `complete()`.

Messages and tool schemas in (OpenAI chat format, which litellm translates for every kind); a
normalised `Completion` out. Failures raise the typed errors of providers.errors, with transient
ones retried with exponential backoff (honouring Retry-After).

litellm is imported here, lazily, on the first call: importing it costs seconds and ~200 MB, which
the web process must not pay. Its remote cost-map fetch is disabled before that import.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any

from providers.errors import (
    AuthenticationFailed,
    BadRequest,
    MalformedResponse,
    ModelNotFound,
    ProviderError,
    RateLimited,
    RequestTimedOut,
    ServerError,
    Unreachable,
)
from providers.kinds import spec
from providers.models import Provider

logger = logging.getLogger("vigilus.providers")

DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 2
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
# Local servers do not check keys, but OpenAI-style clients insist on sending one.
PLACEHOLDER_KEY = "not-needed"


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]  # {} when the model's arguments were not a JSON object; see `error`
    raw_arguments: str
    error: str | None = None  # why the arguments could not be parsed, for the model to be told


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None  # USD, where litellm knows the model's price
    latency_ms: int = 0
    model: str = ""


@cache
def litellm() -> ModuleType:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm as module

    module.telemetry = False
    module.suppress_debug_info = True
    module.drop_params = True  # a parameter a kind does not support is dropped, not an error
    # litellm's loggers print to stdout through handlers of their own, past the redacting filter:
    # route them through ours instead, and keep only warnings.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        library_logger = logging.getLogger(name)
        library_logger.handlers.clear()
        library_logger.propagate = True
        library_logger.setLevel(logging.WARNING)
    return module


def litellm_arguments(provider: Provider, model: str) -> dict[str, Any]:
    """How litellm addresses this provider: prefixed model name, api_base, api_key."""
    kind = spec(provider.kind)
    return {
        "model": kind.litellm_prefix + model,
        "api_base": provider.endpoint + kind.completion_path,
        "api_key": provider.api_key or PLACEHOLDER_KEY,
    }


def complete(
    provider: Provider,
    messages: list[dict[str, Any]],
    *,
    model: str | None = None,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: str | dict | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    max_tokens: int | None = None,
) -> Completion:
    """Ask the provider's model (or `model`) for the next message. Raises ProviderError subclasses."""
    chosen = (model or provider.default_model).strip()
    if not chosen:
        raise BadRequest(f"No model chosen, and {provider.name} has no default model.")
    kwargs: dict[str, Any] = {
        **litellm_arguments(provider, chosen),
        "messages": messages,
        "timeout": timeout,
        "num_retries": 0,
        "max_retries": 0,
    }
    if tools:
        kwargs["tools"] = tools
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    attempt = 0
    library = litellm()  # the first call imports it: not part of the latency
    while True:
        started = time.monotonic()
        try:
            response = library.completion(**kwargs)
            return normalise(response, latency_ms=int((time.monotonic() - started) * 1000), model=chosen)
        except Exception as exc:
            error = exc if isinstance(exc, ProviderError) else translate(exc, provider)
        if not error.transient or attempt >= max_retries:
            raise error
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
        if isinstance(error, RateLimited) and error.retry_after is not None:
            delay = min(BACKOFF_CAP, max(delay, error.retry_after))
        attempt += 1
        logger.warning("%s: %s; retry %d/%d in %.1f s", provider.name, error.label, attempt, max_retries, delay)
        time.sleep(delay)


def normalise(response: Any, *, latency_ms: int, model: str) -> Completion:
    """litellm's ModelResponse as a Completion; malformed tool arguments are reported, not raised."""
    try:
        choice = response.choices[0]
        message = choice.message
    except (AttributeError, IndexError, TypeError):
        raise MalformedResponse("The endpoint's answer has no message.") from None
    calls = []
    for index, call in enumerate(getattr(message, "tool_calls", None) or []):
        raw = call.function.arguments or ""
        arguments, error = parse_arguments(raw)
        calls.append(ToolCall(call.id or f"call_{index}", call.function.name or "", arguments, raw, error))
    usage = getattr(response, "usage", None)
    return Completion(
        text=message.content or "",
        tool_calls=calls,
        finish_reason=choice.finish_reason or "",
        usage=Usage(
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            total_tokens=getattr(usage, "total_tokens", 0) or 0,
        ),
        cost=cost_of(response),
        latency_ms=latency_ms,
        model=model,
    )


def parse_arguments(raw: str | dict) -> tuple[dict[str, Any], str | None]:
    if isinstance(raw, dict):
        return raw, None
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return {}, f"arguments are not valid JSON ({exc.msg} at position {exc.pos})"
    if not isinstance(value, dict):
        return {}, f"arguments must be a JSON object, got {type(value).__name__}"
    return value, None


def cost_of(response: Any) -> float | None:
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if cost is None and "response_cost" not in hidden:  # litellm priced it already (None: it has no price)
        try:
            cost = litellm().completion_cost(completion_response=response)
        except Exception:
            return None
    return float(cost) if cost else None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__ or getattr(current, "original_exception", None)
    return seen


def _connection_failed(exc: BaseException) -> bool:
    """Whether the chain of causes holds a failure to connect (not a reply cut short after connecting)."""
    import httpx

    return any(
        isinstance(link, httpx.ConnectError | httpx.ConnectTimeout | ConnectionRefusedError | socket.gaierror)
        for link in _chain(exc)
    )


def _retry_after(exc: BaseException) -> float | None:
    from providers.discovery import parse_retry_after

    headers = getattr(exc, "litellm_response_headers", None) or {}
    response = getattr(exc, "response", None)
    if not headers and response is not None:
        headers = getattr(response, "headers", {}) or {}
    for name in ("retry-after", "Retry-After"):
        if name in headers:
            return parse_retry_after(headers[name])
    return None


def first_line(text: str, limit: int = 300) -> str:
    """The gist of a library's message: its first line, without any traceback appended to it."""
    return (text.split("\nTraceback", 1)[0].strip().splitlines() or [""])[0][:limit]


def translate(exc: Exception, provider: Provider) -> ProviderError:
    """A litellm exception as one of our typed errors, with a message a person can act on."""
    lib = litellm()
    where = provider.endpoint
    detail = first_line(str(getattr(exc, "message", "") or exc))
    status = getattr(exc, "status_code", None)
    if isinstance(exc, lib.AuthenticationError | lib.PermissionDeniedError):
        return AuthenticationFailed(f"{where} refused the API key: {detail}")
    if isinstance(exc, lib.RateLimitError):
        return RateLimited(f"{where} is rate limiting requests: {detail}", _retry_after(exc))
    if isinstance(exc, lib.Timeout):
        return RequestTimedOut(f"No answer from {where} within the timeout.")
    if _connection_failed(exc):
        return Unreachable(f"Cannot connect to {where}: is the server up and the URL right?")
    if isinstance(exc, lib.NotFoundError):
        return ModelNotFound(f"{where} does not know this model (or path): {detail}")
    if isinstance(exc, lib.APIConnectionError):
        return MalformedResponse(f"{where} sent an answer that could not be read: {detail}")
    if isinstance(exc, lib.BadRequestError):
        return BadRequest(f"{where} refused the request: {detail}")
    if status in (None, 200) or "JSON" in detail or "Expecting value" in detail:
        return MalformedResponse(f"{where} sent an answer that could not be read: {detail}")
    if isinstance(status, int) and status >= 500:
        return ServerError(f"{where} failed (HTTP {status}): {detail}")
    return ProviderError(f"{where}: {type(exc).__name__}: {detail}")
