"""What one tool call through tools.gateway.execute() costs over the bare MCP call it makes.

Two read tools, each called N times both ways:

- uptime: the built-in shell server's `run_command` with `uptime` (classified read by the command-line
  classifier, run from its parsed argv): a real read tool, in process over the SDK's in-memory transport;
- echo: the `echo` tool of a tiny stdio server (tests/tools/mcp_servers/echo.py, annotated read-only,
  registered as trusted, so the gateway classifies it `read`, with an API key in its env as third-party
  servers usually have, which the gateway reads, encrypted, with the server before every call): the worst
  case, a tool that does nothing, which shows the gateway's fixed cost.

- gateway: execute(...) — tool lookup, schema validation, intent, policy, two audit records (durable,
  before and after dispatch), dispatch over the pool's persistent session (its own loop thread),
  redaction, capping;
- raw: `pool().call_tool(...)` on the same MCP session the gateway dispatches to, none of the checks
  (gateway and raw calls take turns in blocks of 100, so a drift in the machine's speed hits both alike);
- for reference, `await client.call_tool(...)` on a bare mcp.Client session, all calls in one event loop
  (no thread hop to the pool's loop).

Audit records go to the configured logging, with the console stream pointed at /dev/null (as if piped to
a supervisor) so a terminal's speed is not measured. The database is SQLite in a throwaway data directory,
as `make run` sets up, or with `postgresql` a throwaway PostgreSQL database (see benchlib.POSTGRES).

Target: the gateway path costs at most 1.3x the raw call at p50, for a read tool. Both tools are judged
against it. The real read tool (uptime) is the one a user's calls look like; echo is the worst case, a
sub-millisecond raw call against which the gateway's fixed cost (the tool row read, two durable,
hash-chained audit entries: one commit each) weighs most.

    .venv/bin/python bench/gateway.py [N] [sqlite|postgresql]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from benchlib import percentile, throwaway_postgres, throwaway_vigilus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
DATABASE = sys.argv[2] if len(sys.argv) > 2 else "sqlite"
WARMUP = 50
BLOCK = 100
TARGET = 1.3
SERVER = ROOT / "tests" / "tools" / "mcp_servers" / "echo.py"
ARGUMENTS = {"text": "uptime: 12 days, load average: 0.08, 0.05, 0.01"}


def register_echo() -> None:
    from tools.choices import Transport
    from tools.models import MCPServer
    from tools.services import discover_server

    server = MCPServer.objects.create(
        name="bench-echo",
        transport=Transport.STDIO,
        command=sys.executable,
        args=[str(SERVER)],
        env=json.dumps({"ECHO_API_KEY": "bench-key-6c1f0a9e27d4"}),
        trusted=True,
    )
    report = discover_server(server)
    if report.status != "ok":
        raise SystemExit(f"discovery failed: {report.error}")


def timed_in_turns(ways: dict[str, Callable[[], object]], failed: Callable[[str, object], bool], n: int) -> dict:
    """Milliseconds of n calls each way, the ways taking turns in blocks of BLOCK calls (after WARMUP calls each),
    so that both see the same machine: this VM's speed drifts by up to ~1.6x from one minute to the next.
    Stops at the first failed result."""
    times: dict[str, list[float]] = {way: [] for way in ways}
    for call in ways.values():
        for _ in range(WARMUP):
            call()
    while any(len(values) < n for values in times.values()):
        for way, call in ways.items():
            for _ in range(min(BLOCK, n - len(times[way]))):
                started = time.perf_counter()
                result = call()
                elapsed = (time.perf_counter() - started) * 1000
                if failed(way, result):
                    raise SystemExit(f"{way} call failed: {result}")
                times[way].append(elapsed)
    return times


def bench_gateway_and_same_session(qualified_name: str, arguments: dict, n: int) -> tuple[list[float], list[float]]:
    """The gateway, and raw calls on the MCP session of the pool the gateway dispatches to (none of the checks)."""
    from tools import gateway
    from tools.mcp_client import ServerSpec, pool
    from tools.models import Tool

    tool = Tool.objects.select_related("server").get(qualified_name=qualified_name)
    spec = ServerSpec.of(tool.server)
    ways = {
        "gateway": lambda: gateway.execute(qualified_name, arguments, timeout=30),
        "raw": lambda: pool().call_tool(spec, tool.name, arguments, timeout=30),
    }

    def failed(way: str, result: Any) -> bool:
        return (not result.ok or result.intent != "read") if way == "gateway" else result.is_error

    times = timed_in_turns(ways, failed, n)
    return times["gateway"], times["raw"]


def bench_bare_client(target: object, tool: str, arguments: dict, n: int) -> list[float]:
    from mcp import Client

    async def run() -> list[float]:
        times = []
        async with Client(target) as client:
            for i in range(WARMUP + n):
                started = time.perf_counter()
                result = await client.call_tool(tool, arguments)
                elapsed = (time.perf_counter() - started) * 1000
                if result.is_error:
                    raise SystemExit(f"raw call failed: {result}")
                if i >= WARMUP:
                    times.append(elapsed)
        return times

    return asyncio.run(run())


def measure() -> list[tuple[str, list[float], list[float], list[float]]]:
    """(label, gateway, raw same session, bare client) for each read tool."""
    from mcp import StdioServerParameters

    from tools.mcp_client import pool
    from tools.servers.registry import build_builtin_server
    from tools.services import discover_all

    discover_all()
    register_echo()
    uptime = {"command": "uptime"}
    cases = [
        (
            "shell uptime (built-in, a real read tool)",
            *bench_gateway_and_same_session("shell__run_command", uptime, N),
            bench_bare_client(build_builtin_server("shell"), "run_command", uptime, N),
        ),
        (
            "echo (stdio, a tool that does nothing: the worst case)",
            *bench_gateway_and_same_session("bench-echo__echo", ARGUMENTS, N),
            bench_bare_client(StdioServerParameters(command=sys.executable, args=[str(SERVER)]), "echo", ARGUMENTS, N),
        ),
    ]
    pool().shutdown()
    return cases


def main() -> None:
    if DATABASE not in ("sqlite", "postgresql"):
        raise SystemExit(f"unknown database {DATABASE!r}: sqlite or postgresql")
    with throwaway_postgres("vigilus_bench_gateway") if DATABASE == "postgresql" else nullcontext() as database_url:
        throwaway_vigilus(database_url)
        cases = measure()
        from django.db import connections

        connections.close_all()  # before the throwaway database is dropped

    print(f"{N} calls of each read tool, each way (after {WARMUP} warm-up calls), on {DATABASE}")
    print(f"{'':<40}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for label, through_gateway, raw, bare in cases:
        print(label)
        ways = (
            ("tools.gateway.execute", through_gateway),
            ("raw call, same MCP session", raw),
            ("bare mcp.Client (reference)", bare),
        )
        for way, values in ways:
            p50, p99, mean = percentile(values, 50), percentile(values, 99), statistics.mean(values)
            print(f"  {way:<38}{p50:>10.3f}{p99:>10.3f}{mean:>10.3f}")
        ratio = percentile(through_gateway, 50) / percentile(raw, 50)
        extra = percentile(through_gateway, 50) - percentile(raw, 50)
        verdict = f"{'meets' if ratio <= TARGET else 'misses'} the <= {TARGET}x target"
        print(f"  p50 gateway / raw same session: {ratio:.2f}x, +{extra:.2f} ms ({verdict})")


if __name__ == "__main__":
    main()
