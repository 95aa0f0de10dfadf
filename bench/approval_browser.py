"""Issue 17, measured in a real browser: how long strict mode's round trip takes as people see it.

(a) approve -> Completed: an approver (phone viewport, 390 px) clicks Approve on the Approvals page; the submitter's
    run page (desktop, 1440 px, another browser context) shows the run Completed. Target p95 <= 0.15 s.
(b) request raised -> visible: the run parks in strict mode (the worker creates the access request); the card for it
    appears on the approver's already open Approvals page, pushed over its websocket. Reported, no target.

The stack is the one tests/e2e/test_live.py drives, started by this script: daphne (`vigilus.asgi:application`) and a
Celery worker (`celery --app vigilus worker --concurrency 2`) as subprocesses on a throwaway data directory (SQLite,
keys), the scripted fake model of tests/fakes/llm.py behind an openai_compatible provider, a strict Operator with the
shell tool, and Playwright driving /usr/bin/chromium (executable_path, --no-sandbox). Each run: the submitter starts
the task on /tasks/ (the model asks for `touch <data dir>/marker-N`, a harmless write -- `echo hi` is a read, which
strict mode runs without asking -- then answers), lands on the run page and waits for "Awaiting approval"; the
approver's card appears; the approver clicks Approve.

How the time is taken, in the browser only (both contexts live in one chromium process, so they share its clocks):

- (a) start: a capture-phase `click` listener on the approver's page notes `performance.timeOrigin +
  performance.now()` as the click is dispatched (Playwright's real click on the card's Approve button). End: a
  MutationObserver on the run page, installed once the page says "Awaiting approval", notes the same clock the first
  time the status (`#transcript > p > strong`) reads "Completed" -- when the DOM changed, before paint. timeOrigin +
  now() is a high-resolution timestamp on the browser's shared monotonic clock, comparable across the two pages.
- (b) start: the request's `created_at` (the worker's wall clock, in the transaction that raises it). End: a
  MutationObserver on the approver's page, installed before the first run, notes `Date.now()` (the same host's wall
  clock) the first time an element `#request-<pk>` is in the page. Wall clocks of one host, so comparable to ~1 ms.

Redis: REDIS_URL (default redis://127.0.0.1:6379/8) with a unique VIGILUS_REDIS_PREFIX whose keys are deleted at the
end (Celery's broker keys in that database are not prefixed). A few warm-up runs are not counted.

    .venv/bin/python bench/approval_browser.py [--runs N] [--warmup W]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchlib import percentile, quiet_console_logging

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VENV_BIN = ROOT / ".venv" / "bin"
CHROMIUM = "/usr/bin/chromium"

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
SHELL = "shell__run_command"
PASSWORD = secrets.token_urlsafe(16)
TARGET_APPROVE_P95_S = 0.15
TODAY_APPROVE_P95_S = 0.22
STEP_TIMEOUT_MS = 30_000

# Approver's context, before any of its scripts: the time of the last click, and when each request card first showed.
APPROVER_CLOCKS = """
window.firstSeen = {};
document.addEventListener("click", () => { window.clickedAt = performance.timeOrigin + performance.now(); }, true);
const noteCards = () => {
  for (const card of document.querySelectorAll("article.request[id^='request-']")) {
    if (!(card.id in window.firstSeen)) window.firstSeen[card.id] = Date.now();
  }
};
new MutationObserver(noteCards).observe(document, {childList: true, subtree: true});
"""
# Run page, once it says "Awaiting approval": the first time its status reads Completed.
WATCH_COMPLETED = """() => {
  window.completedAt = undefined;
  const check = () => {
    const status = document.querySelector("#transcript > p > strong");
    if (window.completedAt === undefined && status && status.textContent.trim() === "Completed") {
      window.completedAt = performance.timeOrigin + performance.now();
    }
  };
  new MutationObserver(check).observe(document, {childList: true, subtree: true, characterData: true});
  check();
}"""


def setup_environment(redis_url: str) -> Path:
    data_dir = Path(tempfile.mkdtemp(prefix="vigilus-bench-browser-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "vigilus.settings"
    os.environ["VIGILUS_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)  # SQLite in the data dir: never migrate a shared database
    os.environ["REDIS_URL"] = redis_url
    os.environ["VIGILUS_REDIS_PREFIX"] = f"vigilus-bench-browser-{os.getpid()}-{secrets.token_hex(4)}"
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ["PYTHONUNBUFFERED"] = "1"
    return data_dir


def migrate() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"migrate failed:\n{result.stdout}\n{result.stderr}")


def create_people(model_url: str) -> str:
    """alice (admin, the submitter), bert (an approver) and the strict Operator `fixer`; returns its name."""
    from operators.choices import Ceiling, OperatorJITMode
    from operators.models import Operator
    from providers.services import create_provider
    from tools.models import Tool
    from tools.services import discover_all
    from vigilus.choices import Role
    from vigilus.services import create_user

    admin, _ = create_user("alice", role=Role.ADMIN, password=PASSWORD)
    create_user("bert", role=Role.APPROVER, password=PASSWORD)
    discover_all()
    provider = create_provider(
        actor=admin, name="lab", kind="openai_compatible", base_url=model_url + "/v1", default_model="m"
    )
    operator = Operator.objects.create(
        name="fixer", provider=provider, ceiling=Ceiling.EXEC, jit_mode=OperatorJITMode.STRICT
    )
    operator.tools.add(Tool.objects.get(qualified_name=SHELL))
    return operator.name


def start(command: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command, cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_until(condition: Any, what: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what}: the process exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        if condition():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def start_daphne(port: int, log: Path) -> subprocess.Popen:
    import requests

    process = start([str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "vigilus.asgi:application"], log)

    def answers() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/login/", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(answers, "daphne to serve /login/", process, log)
    return process


def start_worker(log: Path) -> subprocess.Popen:
    from vigilus.celery import app

    name = f"bench-{uuid.uuid4().hex[:8]}@localhost"
    command = [str(VENV_BIN / "celery"), "--app", "vigilus", "worker", "--loglevel", "INFO", "--concurrency", "2"]
    process = start([*command, "--hostname", name, "--without-mingle", "--without-gossip"], log)
    wait_until(lambda: bool(app.control.ping(destination=[name], timeout=0.5)), "the worker's ping", process, log)
    return process


def log_in(context: Any, base_url: str, username: str) -> Any:
    page = context.new_page()
    page.goto(base_url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)
    return page


def one_run(
    model: Any, approvals: Any, submitter: Any, base_url: str, operator: str, index: int
) -> tuple[float, float]:
    """One task through strict mode; returns (approve -> Completed, request raised -> visible) in seconds."""
    from playwright.sync_api import expect

    from jit.models import AccessRequest
    from tests.fakes.llm import text, tool_call

    # `echo hi` is a read (strict mode runs reads at once); touching a file in the throwaway data dir is a write.
    marker = Path(os.environ["VIGILUS_DATA_DIR"]) / f"marker-{index}"
    model.script(tool_call(SHELL, {"command": f"touch {marker}"}), text(f"touched marker {index}"))
    submitter.goto(base_url + "/tasks/")
    submitter.fill("textarea[name=task]", f"say hi ({index})")
    submitter.select_option("select[name=operator]", label=operator)
    submitter.click("button:has-text('Start')")
    submitter.wait_for_url(re.compile(r"/runs/\d+/$"))
    run_id = int(submitter.url.rstrip("/").rsplit("/", 1)[1])
    status = submitter.locator("#transcript > p > strong").first
    expect(status).to_have_text("Awaiting approval", timeout=STEP_TIMEOUT_MS)
    submitter.evaluate(WATCH_COMPLETED)

    request = AccessRequest.objects.get(run_id=run_id)
    card_id = f"request-{request.pk}"
    card = approvals.locator(f"#{card_id}")
    expect(card).to_have_count(1, timeout=STEP_TIMEOUT_MS)
    seen_ms = approvals.evaluate(f"window.firstSeen[{card_id!r}]")
    visible = seen_ms / 1000 - request.created_at.timestamp()

    card.locator("form.decision button[type=submit]", has_text="Approve").click()
    submitter.wait_for_function("window.completedAt !== undefined", timeout=STEP_TIMEOUT_MS)
    approved = (submitter.evaluate("window.completedAt") - approvals.evaluate("window.clickedAt")) / 1000
    expect(approvals.locator("article.request")).to_have_count(0, timeout=STEP_TIMEOUT_MS)
    return approved, visible


def clean_redis() -> None:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:*", count=1000))
        keys += list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}.*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def report(approves: list[float], visibles: list[float], runs: int, warmup: int) -> None:
    print(f"{runs} runs (after {warmup} warm-up), strict Operator, `touch` a marker, chromium {CHROMIUM}")
    print(f"{'':<46}{'p50 s':>8}{'p95 s':>8}{'max s':>8}   target")
    rows = (
        ("(a) Approve click (390 px) -> Completed (1440)", approves, f"p95 <= {TARGET_APPROVE_P95_S:.2f} s"),
        ("(b) request raised -> card on Approvals page", visibles, "(reported)"),
    )
    for label, values, target in rows:
        p50, p95 = percentile(values, 50), percentile(values, 95)
        print(f"{label:<46}{p50:>8.3f}{p95:>8.3f}{max(values):>8.3f}   {target}")
    p95 = percentile(approves, 95)
    verdict = "meets" if p95 <= TARGET_APPROVE_P95_S else "misses"
    print(f"(a) p95 {p95:.3f} s: {verdict} the <= {TARGET_APPROVE_P95_S:.2f} s target (today ~{TODAY_APPROVE_P95_S} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="measured runs (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="runs not counted (default 2)")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/8"))
    args = parser.parse_args()

    from tests.fakes.llm import FakeLLMServer
    from tests.ports import free_port

    data_dir = setup_environment(args.redis)
    processes: list[subprocess.Popen] = []
    try:
        migrate()
        import django

        django.setup()
        quiet_console_logging()
        with FakeLLMServer([]) as model:
            operator = create_people(model.url)
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            processes.append(start_daphne(port, data_dir / "daphne.log"))
            processes.append(start_worker(data_dir / "worker.log"))
            # Playwright's sync API runs an event loop in this thread; the ORM reads between browser steps are
            # plain synchronous calls (the child processes were started without this).
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
            from playwright.sync_api import expect, sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                approver = browser.new_context(viewport=PHONE)
                approver.add_init_script(APPROVER_CLOCKS)
                approvals = log_in(approver, base_url, "bert")
                approvals.goto(base_url + "/approvals/")
                expect(approvals.locator("#pending-requests")).to_contain_text("Nothing is waiting")
                submitter = log_in(browser.new_context(viewport=DESKTOP), base_url, "alice")

                approves: list[float] = []
                visibles: list[float] = []
                for index in range(args.warmup + args.runs):
                    approved, visible = one_run(model, approvals, submitter, base_url, operator, index)
                    if index >= args.warmup:
                        approves.append(approved)
                        visibles.append(visible)
                browser.close()
        report(approves, visibles, args.runs, args.warmup)
    finally:
        for process in reversed(processes):
            stop(process)
        if "django.conf" in sys.modules:
            from django.conf import settings

            if settings.configured:
                clean_redis()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
