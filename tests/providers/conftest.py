"""Fixtures for the providers tests: a running fake LLM server, and providers of every kind pointed at it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import User

from providers import client
from providers.choices import ProviderKind
from providers.models import Provider
from providers.services import create_provider
from tests.fakes.llm import FakeLLMServer

# How each kind's endpoint is written when it points at the fake (see the table in tests/fakes/llm.py):
# OpenAI-style kinds are documented with /v1; Anthropic, Gemini and Ollama take the bare host.
BARE_HOST_KINDS = frozenset({ProviderKind.ANTHROPIC, ProviderKind.GOOGLE, ProviderKind.OLLAMA})

_names = itertools.count(1)


def endpoint_for(kind: str, url: str) -> str:
    """The base URL a person would enter for `kind` when the server lives at `url`."""
    return url if kind in BARE_HOST_KINDS else url + "/v1"


@pytest.fixture(scope="session")
def _litellm_loaded() -> None:
    """Pay litellm's import once, up front, so that timing assertions measure calls, not the import."""
    client.litellm()


@pytest.fixture
def llm_server(_litellm_loaded: None) -> Iterator[FakeLLMServer]:
    """A fake LLM server speaking every wire format, with an empty script."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries wait milliseconds, not seconds (the schedule stays exponential)."""
    monkeypatch.setattr(client, "BACKOFF_BASE", 0.001)


MakeProvider = Callable[..., Provider]


@pytest.fixture
def make_provider(admin_user: User, llm_server: FakeLLMServer) -> MakeProvider:
    """Saves a provider of `kind` pointed at the fake server (or at `url`), through the service verb."""

    def make(
        kind: str,
        *,
        api_key: str = "",
        url: str | None = None,
        default_model: str = "fake-small",
    ) -> Provider:
        return create_provider(
            actor=admin_user,
            name=f"{str(kind).replace('_', '-')}-{next(_names)}",
            kind=kind,
            base_url=endpoint_for(kind, url or llm_server.url),
            api_key=api_key,
            default_model=default_model,
        )

    return make
