"""Listing a provider's models over plain HTTP (httpx; no litellm, so the web process can do it)."""

from __future__ import annotations

import json

import httpx

from providers.errors import (
    AuthenticationFailed,
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

ANTHROPIC_VERSION = "2023-06-01"
LIST_TIMEOUT = 10.0


def _request(provider: Provider, timeout: float) -> tuple[str, dict[str, str]]:
    """The URL that lists models for this provider's kind, and the headers that authenticate it."""
    api = spec(provider.kind).models_api
    base = provider.endpoint
    key = provider.api_key
    if api == "ollama":
        return f"{base}/api/tags", {}
    if api == "anthropic":
        return f"{base}/v1/models?limit=1000", {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
    if api == "gemini":
        return f"{base}/v1beta/models?pageSize=1000", {"x-goog-api-key": key}
    return f"{base}/models", ({"Authorization": f"Bearer {key}"} if key else {})


def _model_names(api: str, body: dict) -> list[str]:
    if api == "ollama":
        return [m["name"] for m in body["models"]]
    if api == "gemini":
        return [
            m["name"].removeprefix("models/")
            for m in body["models"]
            if "generateContent" in m.get("supportedGenerationMethods", ["generateContent"])
        ]
    return [m["id"] for m in body["data"]]


def error_for_status(status: int, detail: str, retry_after: float | None = None) -> ProviderError:
    if status in (401, 403):
        return AuthenticationFailed(f"HTTP {status}: the endpoint refused the API key. {detail}")
    if status == 404:
        return ModelNotFound(f"HTTP 404: not found at this endpoint. {detail}")
    if status == 429:
        return RateLimited(f"HTTP 429: rate limited. {detail}", retry_after)
    if status >= 500:
        return ServerError(f"HTTP {status}: the endpoint failed. {detail}")
    return ProviderError(f"HTTP {status}: {detail}")


def parse_retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def list_models(provider: Provider, *, timeout: float = LIST_TIMEOUT) -> list[str]:
    """The model names the endpoint offers, sorted. Raises a ProviderError saying what went wrong."""
    url, headers = _request(provider, timeout)
    try:
        response = httpx.get(url, headers=headers, timeout=timeout, follow_redirects=True)
    except httpx.TimeoutException:
        raise RequestTimedOut(f"No answer from {provider.endpoint} within {timeout:.0f} s.") from None
    except httpx.HTTPError as exc:
        raise Unreachable(f"Cannot reach {provider.endpoint}: {exc}") from None
    if response.status_code >= 400:
        raise error_for_status(
            response.status_code, response.text[:200], parse_retry_after(response.headers.get("retry-after"))
        )
    api = spec(provider.kind).models_api
    try:
        return sorted(set(_model_names(api, response.json())))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise MalformedResponse(f"{url} did not answer with a model list ({type(exc).__name__}).") from None
