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


# What an OpenAI-style /models entry may say about a model's context, most telling first: what the server was
# started with (vLLM's max_model_len, LM Studio's loaded length, llama.cpp's n_ctx), then what the model was
# trained for (llama.cpp's n_ctx_train, OpenRouter's context_length), which the running server may not offer.
RUNTIME_CONTEXT_KEYS = ("max_model_len", "loaded_context_length", "n_ctx")
TRAINED_CONTEXT_KEYS = ("n_ctx_train", "context_length", "max_context_length")


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _entry_context(entry: dict) -> tuple[int | None, int | None]:
    """(runtime, trained) context lengths an OpenAI-style model entry (or its llama.cpp `meta`) states."""
    places = [entry, entry.get("meta") or {}]
    found = [
        next((n for place in places for key in keys if (n := _positive(place.get(key))) is not None), None)
        for keys in (RUNTIME_CONTEXT_KEYS, TRAINED_CONTEXT_KEYS)
    ]
    return found[0], found[1]


def _llama_cpp_runtime_context(provider: Provider, timeout: float) -> int | None:
    """llama.cpp's server states the context it runs with at /props (next to /v1, not under it)."""
    root = provider.endpoint.removesuffix("/v1")
    try:
        body = httpx.get(f"{root}/props", timeout=timeout).json()
    except (httpx.HTTPError, json.JSONDecodeError):
        return None
    settings = body.get("default_generation_settings") if isinstance(body, dict) else None
    return _positive((settings or {}).get("n_ctx")) or _positive(body.get("n_ctx") if isinstance(body, dict) else None)


def server_context_window(provider: Provider, model: str, *, timeout: float = LIST_TIMEOUT) -> int | None:
    """The context window the endpoint states for `model`, in tokens; None where it says nothing (or cannot
    be reached: the caller falls back to the provider's setting). Ollama's /api/show gives the model's
    trained length, which caps what Vigilus asks it for; OpenAI-style servers may say it in their /models."""
    api = spec(provider.kind).models_api
    try:
        if api == "ollama":
            response = httpx.post(f"{provider.endpoint}/api/show", json={"model": model}, timeout=timeout)
            info = (response.json().get("model_info") or {}) if response.status_code == 200 else {}
            return next((_positive(v) for k, v in info.items() if k.endswith(".context_length") and _positive(v)), None)
        if api == "gemini":
            url, headers = _request(provider, timeout)
            response = httpx.get(url, headers=headers, timeout=timeout)
            for entry in (response.json().get("models") or ()) if response.status_code == 200 else ():
                if entry.get("name", "").removeprefix("models/") == model:
                    return _positive(entry.get("inputTokenLimit"))
            return None
        if api != "openai":
            return None
        url, headers = _request(provider, timeout)
        response = httpx.get(url, headers=headers, timeout=timeout, follow_redirects=True)
        entries = (response.json().get("data") or ()) if response.status_code == 200 else ()
    except (httpx.HTTPError, json.JSONDecodeError, AttributeError):
        return None
    listed = [entry for entry in entries if isinstance(entry, dict)]
    # A single-model server (llama.cpp's) answers to any model name and lists its file path as the id.
    matching = [entry for entry in listed if entry.get("id") == model] or (listed if len(listed) == 1 else [])
    for entry in matching[:1]:
        runtime, trained = _entry_context(entry)
        if runtime is None and trained is not None and "meta" in entry:
            runtime = _llama_cpp_runtime_context(provider, timeout)
        return runtime or trained
    return None
