"""Values as a person reads them on a page or in a notification."""

from __future__ import annotations

from typing import Any


def time_left(seconds: int) -> str:
    """A countdown as a person says it: "1 h 5 min", "4 min 10 s", "45 s"."""
    minutes, seconds = divmod(max(0, seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def command_line(arguments: Any) -> str:
    """The shell line a command tool asks to run (its `command` argument), shown whole; '' for other tools."""
    command = arguments.get("command") if isinstance(arguments, dict) else None
    return command if isinstance(command, str) else ""
