"""What an approver reads on a request's card: the time left as a person says it, and a command tool's shell line."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jit.models import AccessRequest

pytestmark = pytest.mark.engine_independent


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(45, "45 s"), (250, "4 min 10 s"), (60, "1 min 0 s"), (3900, "1 h 5 min"), (-5, "0 s")],
)
def test_the_time_left_reads_as_a_person_says_it(seconds: int, said: str) -> None:
    request = AccessRequest(expires_at=timezone.now() + timedelta(seconds=seconds, milliseconds=500))
    assert request.time_left == said


def test_a_command_tools_call_shows_its_shell_line_and_other_tools_show_nothing() -> None:
    assert AccessRequest(arguments={"command": "systemctl restart nginx", "timeout": 5}).command_line == (
        "systemctl restart nginx"
    )
    assert AccessRequest(arguments={"path": "/etc/hosts", "content": "x"}).command_line == ""
    assert AccessRequest(arguments={"command": ["rm", "-rf", "/"]}).command_line == ""
