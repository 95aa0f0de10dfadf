from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from operators.models import Operator
from providers.services import create_provider
from tools.models import Tool
from tools.services import discover_all


@pytest.fixture
def shell_tool(db: None) -> Tool:
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    return Tool.objects.get(qualified_name="shell__run_command")


@pytest.fixture
def make_operator(admin_user: object, shell_tool: Tool):
    provider = create_provider(actor=admin_user, name="local", kind="ollama", default_model="m")

    def make(name: str = "fixer", ceiling: str = "exec", jit_mode: str = "strict") -> Operator:
        operator = Operator.objects.create(name=name, provider=provider, ceiling=ceiling, jit_mode=jit_mode)
        operator.tools.add(shell_tool)
        return operator

    return make
