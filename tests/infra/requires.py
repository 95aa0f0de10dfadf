"""Skips for tests that need a system program: the message names the Debian package to install
(`.ci/run` installs them all; under CI=true a skip is a failure)."""

from __future__ import annotations

import shutil

import pytest


def require_program(program: str, package: str) -> str:
    """The path of `program`, or skip naming the package that provides it."""
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        pytest.skip(
            f"{program} is not installed: `apt-get install --no-install-recommends {package}` (.ci/run does this)"
        )
    return path
