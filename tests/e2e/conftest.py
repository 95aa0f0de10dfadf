"""Real-browser tests: Playwright for Python driving Debian's chromium (`executable_path`; Playwright's own browser
download cannot work without the internet), against the real dashboard served by daphne (websockets included) on
the test database, with the session's real Celery worker where runs must move.

A failing test saves a screenshot of each page it opened (the path is in the failure report).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import PASSWORD, ROOT, VENV_BIN, process_env, wait_for
from tests.infra.requires import require_program
from tests.ports import free_port

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def _real_password_hashing() -> Iterator[None]:
    """Users log in through the dashboard's own process, which knows only the real password hashers."""
    from django.conf import global_settings
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=global_settings.PASSWORD_HASHERS):
        yield


# Package scope, not session: while Playwright's sync API is started its event loop counts as running in the
# test thread, and every later test whose code calls async_to_sync (a live push) would fail.
@pytest.fixture(scope="package")
def chromium() -> Iterator[object]:
    executable = require_program("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in the test's thread; the ORM calls of these tests are still plain
    # synchronous calls between browser steps. Allowed for this package's tests only, never the rest of the suite.
    allowed = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
            browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            yield browser
            browser.close()
    finally:
        if allowed is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = allowed


class Daphne:
    """The dashboard as `vigilus run` serves it (daphne, HTTP and websockets) on the test database, logging to `log`.
    Its port stays the same across stop() and start(), so pages opened on it reconnect to the restarted server."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.port = env, log, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "daphne"), "--bind", "127.0.0.1", "--port", str(self.port), "vigilus.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = self.process

        def answers() -> bool:
            try:
                return requests.get(f"{self.url}/login/", timeout=1).status_code == 200
            except requests.RequestException:
                return process.poll() is not None

        wait_for(answers, timeout=60, what="daphne to serve the login page")
        if process.poll() is not None:
            raise AssertionError(f"daphne exited: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stops daphne as a service manager would: SIGTERM, then SIGKILL if it has not exited within 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(20)
            raise AssertionError(f"daphne ignored SIGTERM for 20 s: {self.log.read_text()[-2000:]}") from None


@pytest.fixture(scope="session")
def dashboard_server(
    django_db_setup: None, django_db_blocker: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daphne]:
    """The session's dashboard; tests read its log (`.log`) for server-side errors."""
    with django_db_blocker.unblock():
        server = Daphne(process_env(), tmp_path_factory.mktemp("daphne") / "daphne.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dashboard(dashboard_server: Daphne) -> str:
    """The session dashboard's URL."""
    return dashboard_server.url


class Browsing:
    """One person's browser context: pages they open, console errors seen, screenshots on failure."""

    def __init__(self, context: object, base_url: str) -> None:
        self.context, self.base_url = context, base_url
        self.pages: list[object] = []
        self.console_errors: list[str] = []

    def open(self, path: str = "/") -> object:
        page = self.pages[0] if self.pages else self.new_page()
        page.goto(self.base_url + path)
        return page

    def new_page(self) -> object:
        page = self.context.new_page()
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        # The console says only "Failed to load resource"; the response names it.
        page.on(
            "response",
            lambda answer: answer.status >= 400 and self.console_errors.append(f"{answer.status} from {answer.url}"),
        )
        self.pages.append(page)
        return page

    def log_in(self, username: str, password: str = PASSWORD) -> object:
        page = self.open("/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/login/" not in url)
        return page


@pytest.fixture
def browse(
    chromium: object, dashboard: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Browsing]]:
    """Opens a browser context at a viewport (PHONE or DESKTOP); each is closed after the test."""
    opened: list[Browsing] = []

    def make(viewport: dict[str, int] = DESKTOP, server: str | None = None) -> Browsing:
        """`server`: the URL of another dashboard than the session's (one the test stops and starts)."""
        url = server or dashboard
        browsing = Browsing(chromium.new_context(viewport=viewport, base_url=url), url)
        opened.append(browsing)
        return browsing

    yield make
    if request.node.stash.get(FAILED, False):
        shots = tmp_path_factory.mktemp("screenshots")
        for n, browsing in enumerate(opened):
            for m, page in enumerate(browsing.pages):
                page.screenshot(path=str(shots / f"{request.node.name}-{n}-{m}.png"), full_page=True)
        print(f"screenshots of the failed test: {shots}")
    for browsing in opened:
        browsing.context.close()
