"""The packaging tests run the product as users get it: the image on a real Docker engine, install.sh under a real
systemd. One engine for the session (tests/packaging/engine.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.packaging import engine


@pytest.fixture(scope="session")
def docker_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A Docker daemon that answers, with debian:bookworm-slim in its store."""
    with engine.docker_daemon(tmp_path_factory.mktemp("dockerd") / "dockerd.log"):
        engine.ensure_base_image()
        yield
