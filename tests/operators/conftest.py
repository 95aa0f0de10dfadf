"""Fixtures of the agent-loop tests: a scripted model on real HTTP, and Operators that use it through the shell
tool (modules whose runs need the session's Celery worker, or a stored API key, make their own `operator`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from operators.choices import Ceiling, OperatorJITMode
from operators.models import Operator
from providers.services import create_provider
from tests.fakes.llm import FakeLLMServer
from tools.models import Tool
from tools.services import discover_all

SHELL = "shell__run_command"


@pytest.fixture
def model() -> Iterator[FakeLLMServer]:
    with FakeLLMServer([]) as server:
        yield server


@pytest.fixture
def operator(admin_user, model: FakeLLMServer) -> Callable[..., Operator]:
    """Makes the Operator `fixer` with the shell tool, on a provider pointed at `model`."""
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    provider = create_provider(
        actor=admin_user, name="lab", kind="openai_compatible", base_url=model.url + "/v1", default_model="m"
    )

    def make(ceiling: str = Ceiling.EXEC, jit_mode: str = OperatorJITMode.LENIENT) -> Operator:
        op = Operator.objects.create(name="fixer", provider=provider, ceiling=ceiling, jit_mode=jit_mode)
        op.tools.add(Tool.objects.get(qualified_name=SHELL))
        return op

    return make
