"""The `shell` built-in server: one tool, `run_command`, that runs a command on the Vigilus host.

What was classified is what runs: the command is classified here with the same parser the gateway
uses (tools.intent.commandline). A `read` command runs from its parsed argv, stage by stage, without a
shell: its words cannot expand, substitute or redirect. Anything else runs under `/bin/sh -c`, which
the gateway only dispatches with a human's (or lenient policy's) grant. The data directory is refused
at every intent, before anything starts. Each run gets its own process group(s), killed on timeout.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import anyio
from anyio.abc import ByteReceiveStream, Process
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from tools.choices import Intent
from tools.servers.common import (
    OUTPUT_LIMIT,
    SECRET_NAME,
    CappedBuffer,
    Refused,
    add_tool,
    data_dir,
    is_within,
    refuse_data_dir,
)

DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 600.0
KILL_GRACE = 5.0  # seconds to wait for killed processes to be reaped
SHELL = "/bin/sh"

# Never handed to commands: Vigilus's own configuration, and (common.SECRET_NAME) anything that looks like a
# credential.
_VIGILUS_ENV = re.compile(r"^(VIGILUS_.*|DATABASE_URL|REDIS_URL|CELERY_.*|DJANGO_.*)$", re.IGNORECASE)


class CommandResult(BaseModel):
    """What a command did."""

    exit_code: int = Field(
        description="Exit status of the command (of the last stage of a pipeline); 128+N when killed by signal N"
    )
    stdout: str = Field(description=f"Standard output, first {OUTPUT_LIMIT} bytes")
    stderr: str = Field(description=f"Standard error, first {OUTPUT_LIMIT} bytes")
    duration_seconds: float
    timed_out: bool = Field(description="The timeout passed and every process of the command was killed")
    intent: str = Field(description="How the command was classified: read, write, exec or elevate")
    ran_without_shell: bool = Field(description="True for a read command: its parsed argv ran, no shell")
    stage_exit_codes: list[int] = Field(description="Exit status of every stage of the pipeline, in order")
    cwd: str


@dataclass
class _Outcome:
    exit_codes: list[int]
    stdout: CappedBuffer
    stderr: CappedBuffer
    duration: float
    timed_out: bool = False
    notes: list[str] = field(default_factory=list)


def build_server() -> MCPServer:
    """The shell server with its one tool."""
    server = MCPServer(
        name="shell",
        title="Shell",
        instructions="Runs commands on the Vigilus host. Read-only commands run at once, from their parsed "
        "arguments (no shell); anything else needs a grant and runs under /bin/sh.",
    )
    add_tool(
        server,
        run_command,
        title="Run a command on the Vigilus host",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
        ),
    )
    return server


async def run_command(
    command: Annotated[str, Field(min_length=1, description="The command line, as you would type it in a shell")],
    cwd: Annotated[
        str | None,
        Field(description="Working directory (absolute, or relative to the home directory); default: home"),
    ] = None,
    timeout: Annotated[
        float, Field(gt=0, le=MAX_TIMEOUT, description=f"Seconds before the command is killed (max {MAX_TIMEOUT:g})")
    ] = DEFAULT_TIMEOUT,
) -> Annotated[CallToolResult, CommandResult]:
    """Run a command on the Vigilus host and return its exit code, stdout and stderr (each capped at 64 KiB)
    and how long it took. Read-only commands (ls, cat, grep, ps, df, pipelines of such) run directly from
    their parsed words, without a shell; other commands run under /bin/sh and need approval. The command and
    everything it starts is killed when the timeout passes. The Vigilus data directory is off limits."""
    from tools.intent.commandline import classify_command
    from tools.intent.paths import protected_path_in

    workdir = _working_directory(cwd)
    try:
        classification = classify_command(command)
        protected = protected_path_in(command, [data_dir()], workdir)
    except Exception as exc:  # a classifier bug must never let an unclassified command run
        raise Refused(f"refused: the command could not be classified ({type(exc).__name__})") from exc
    if protected is not None:
        raise Refused(
            f"refused: `{protected}` is inside the Vigilus data directory ({data_dir()}), which holds "
            "keys and the database; no command may touch it"
        )

    if PROCESS_ENVIRONMENT.search(command):
        raise Refused(
            "refused: process environments (/proc/PID/environ) may hold Vigilus's own secrets; no command may read them"
        )

    intent = Intent(classification.intent)
    if intent == Intent.READ:
        if not classification.pipeline:
            raise Refused("refused: the command was classified read but has no parsed pipeline to run")
        stages = [list(stage) for stage in classification.pipeline]
        _refuse_protected_words(stages, workdir)
    else:
        stages = [[SHELL, "-c", command]]

    outcome = await _run_stages(stages, cwd=workdir, env=_command_environment(), timeout=timeout)
    result = CommandResult(
        exit_code=outcome.exit_codes[-1],
        stdout=outcome.stdout.text(),
        stderr=outcome.stderr.text(),
        duration_seconds=round(outcome.duration, 3),
        timed_out=outcome.timed_out,
        intent=intent.value,
        ran_without_shell=intent == Intent.READ,
        stage_exit_codes=outcome.exit_codes,
        cwd=str(workdir),
    )
    return CallToolResult(
        content=[TextContent(type="text", text=_render(command, result, outcome.notes))],
        structured_content=result.model_dump(mode="json"),
        is_error=outcome.timed_out,
    )


def _working_directory(cwd: str | None) -> Path:
    """The resolved working directory; refused inside the data directory, an error when missing."""
    path = Path(cwd).expanduser() if cwd else Path.home()
    if not path.is_absolute():
        path = Path.home() / path
    resolved = path.resolve()
    refuse_data_dir(resolved, what="working directory")
    if not resolved.is_dir():
        raise Refused(f"working directory {path} does not exist or is not a directory")
    return resolved


# The environment of Vigilus's own processes (database URL, keys given by variable) is off limits too.
PROCESS_ENVIRONMENT = re.compile(r"/proc/[^/\s]*/+environ|environ\b.*/proc/")


def _refuse_protected_words(stages: Sequence[Sequence[str]], cwd: Path) -> None:
    """Second check for read pipelines: no parsed word (or `--opt=value` value) names a path in the data dir."""
    protected = data_dir()
    for stage in stages:
        for word in stage:
            for candidate in {word, word.partition("=")[2]}:
                if not candidate or "\0" in candidate:
                    continue
                path = Path(candidate).expanduser()
                with suppress(OSError, RuntimeError, ValueError):
                    if is_within((cwd / path).resolve(), protected):
                        raise Refused(
                            f"refused: `{word}` is inside the Vigilus data directory ({protected}), "
                            "which holds keys and the database; no command may touch it"
                        )


def _command_environment() -> dict[str, str]:
    """The environment commands run with: Vigilus's own, minus its configuration and anything secret-looking."""
    return {
        name: value for name, value in os.environ.items() if not (_VIGILUS_ENV.match(name) or SECRET_NAME.search(name))
    }


async def _run_stages(stages: list[list[str]], *, cwd: Path, env: dict[str, str], timeout: float) -> _Outcome:
    """Start every stage in its own session (process group), stdout of each piped into the next, and wait for
    all of them and their output, up to `timeout`; then kill every group that is left."""
    procs: list[Process] = []
    stdout = CappedBuffer()
    stderr = CappedBuffer()  # shared by every stage, as a shell's pipeline shares the terminal
    started = time.monotonic()
    outcome = _Outcome(exit_codes=[], stdout=stdout, stderr=stderr, duration=0.0)
    finished = False
    try:
        await _spawn(stages, procs, cwd=cwd, env=env)
        with anyio.move_on_after(timeout) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_drain, procs[-1].stdout, stdout)
                for proc in procs:
                    tg.start_soon(_drain, proc.stderr, stderr)
                    tg.start_soon(proc.wait)
        finished = not scope.cancelled_caught
        if not finished:
            outcome.timed_out = True
            outcome.notes.append(f"timed out after {timeout:g}s: killed the command and every process it started")
    finally:
        with anyio.CancelScope(shield=True):
            if not finished:
                _kill_groups(procs)
            with anyio.move_on_after(KILL_GRACE):
                for proc in procs:
                    with suppress(Exception):
                        await proc.aclose()  # closes its pipes and reaps it
    outcome.duration = time.monotonic() - started
    outcome.exit_codes = [_exit_status(proc.returncode) for proc in procs]
    return outcome


async def _spawn(stages: list[list[str]], procs: list[Process], *, cwd: Path, env: dict[str, str]) -> None:
    """Start the stages left to right, connecting them with pipes; a stage that cannot start is a tool error."""
    upstream: int | None = None  # read end of the pipe from the previous stage
    try:
        for index, argv in enumerate(stages):
            last = index == len(stages) - 1
            downstream, out = (None, subprocess.PIPE) if last else os.pipe()
            try:
                procs.append(
                    await anyio.open_process(
                        argv,
                        stdin=subprocess.DEVNULL if upstream is None else upstream,
                        stdout=out,
                        stderr=subprocess.PIPE,
                        cwd=cwd,
                        env=env,
                        start_new_session=True,
                    )
                )
            except OSError as exc:
                if downstream is not None:
                    os.close(downstream)
                raise Refused(f"could not start `{argv[0]}`: {exc.strerror or exc}") from exc
            finally:
                if not last:
                    os.close(out)
                if upstream is not None:
                    os.close(upstream)
                upstream = None
            upstream = downstream
    except BaseException:
        _kill_groups(procs)
        raise


async def _drain(stream: ByteReceiveStream | None, buffer: CappedBuffer) -> None:
    """Read `stream` to its end into `buffer` (keeps reading past the cap so the writer never blocks)."""
    if stream is None:
        return
    with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        while True:
            buffer.write(await stream.receive())


def _kill_groups(procs: Sequence[Process]) -> None:
    """SIGKILL the process group of every stage (each stage leads its own)."""
    for proc in procs:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _exit_status(returncode: int | None) -> int:
    """A shell-style exit status: 128+N for death by signal N."""
    if returncode is None:
        return 128 + signal.SIGKILL
    return 128 - returncode if returncode < 0 else returncode


def _render(command: str, result: CommandResult, notes: list[str]) -> str:
    """The result as the model reads it."""
    how = "ran from its parsed argv, no shell" if result.ran_without_shell else "ran under /bin/sh"
    lines = [f"$ {command}", f"exit code {result.exit_code} in {result.duration_seconds:.2f}s ({result.intent}; {how})"]
    if len(result.stage_exit_codes) > 1:
        failed = [
            f"stage {i + 1} exited {code}"
            for i, code in enumerate(result.stage_exit_codes[:-1])
            if code not in (0, 128 + signal.SIGPIPE)
        ]
        if failed:
            lines.append("earlier pipeline stages failed: " + ", ".join(failed))
    lines.extend(notes)
    lines.append("stdout:" + ("\n" + result.stdout.removesuffix("\n") if result.stdout else " (empty)"))
    lines.append("stderr:" + ("\n" + result.stderr.removesuffix("\n") if result.stderr else " (empty)"))
    return "\n".join(lines)
