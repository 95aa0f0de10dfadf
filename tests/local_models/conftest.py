"""Fixtures of the local-model tests: one real llama.cpp server for the session, a recording proxy per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers import context
from tests.local_models.environment import LlamaServer, llama_server
from tests.local_models.proxy import RecordingProxy


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct, context 8,192, the tool-calling
    chat format (built and installed into .venv-llm on first use: see environment.py)."""
    with llama_server(tmp_path_factory.mktemp("llama")) as server:
        yield server


@pytest.fixture
def proxy(llama: LlamaServer) -> Iterator[RecordingProxy]:
    with RecordingProxy(llama.url) as recording:
        yield recording


@pytest.fixture(autouse=True)
def _forget_windows() -> None:
    context.forget()
