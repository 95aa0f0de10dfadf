"""What one tool call through tools.gateway.execute() costs over the bare MCP call it makes.

Both sides call the `echo` tool of the same tiny stdio server (tests/tools/mcp_servers/echo.py, annotated
read-only, registered as trusted, so the gateway classifies it `read` and the policy allows it):

- gateway: execute("bench-echo__echo", ...) — tool lookup, schema validation, intent, policy, two audit
  records, dispatch over the pool's persistent session (its own loop thread), redaction, capping;
- raw: `await client.call_tool("echo", ...)` on one mcp.Client session, all calls in one event loop.

Audit records go to the configured logging, with the console stream pointed at /dev/null (as if piped to
a supervisor) so a terminal's speed is not measured. Target: gateway p50 <= 1.3x raw p50.

    .venv/bin/python bench/gateway.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

from benchlib import percentile, throwaway_vigilus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
WARMUP = 50
TARGET = 1.3
SERVER = ROOT / "tests" / "tools" / "mcp_servers" / "echo.py"
ARGUMENTS = {"text": "uptime: 12 days, load average: 0.08, 0.05, 0.01"}


def bench_gateway(n: int) -> list[float]:
    from tools import gateway
    from tools.choices import Transport
    from tools.models import MCPServer
    from tools.services import discover_server

    server = MCPServer.objects.create(
        name="bench-echo", transport=Transport.STDIO, command=sys.executable, args=[str(SERVER)], trusted=True
    )
    report = discover_server(server)
    if report.status != "ok":
        raise SystemExit(f"discovery failed: {report.error}")
    times = []
    for i in range(WARMUP + n):
        started = time.perf_counter()
        result = gateway.execute("bench-echo__echo", ARGUMENTS, timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        if not result.ok or result.intent != "read":
            raise SystemExit(f"gateway call failed: {result}")
        if i >= WARMUP:
            times.append(elapsed)
    return times


def bench_raw(n: int) -> list[float]:
    from mcp import Client, StdioServerParameters

    async def run() -> list[float]:
        times = []
        async with Client(StdioServerParameters(command=sys.executable, args=[str(SERVER)])) as client:
            for i in range(WARMUP + n):
                started = time.perf_counter()
                result = await client.call_tool("echo", ARGUMENTS)
                elapsed = (time.perf_counter() - started) * 1000
                if result.is_error:
                    raise SystemExit(f"raw call failed: {result}")
                if i >= WARMUP:
                    times.append(elapsed)
        return times

    return asyncio.run(run())


def main() -> None:
    throwaway_vigilus()
    raw = bench_raw(N)
    through_gateway = bench_gateway(N)
    from tools.mcp_client import pool

    pool().shutdown()

    print(f"{N} calls of echo on one stdio MCP server (after {WARMUP} warm-up calls each)")
    print(f"{'':<28}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for label, values in (("tools.gateway.execute", through_gateway), ("raw mcp.Client.call_tool", raw)):
        p50, p99, mean = percentile(values, 50), percentile(values, 99), statistics.mean(values)
        print(f"{label:<28}{p50:>10.3f}{p99:>10.3f}{mean:>10.3f}")
    ratio = percentile(through_gateway, 50) / percentile(raw, 50)
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"p50 ratio gateway/raw: {ratio:.2f}x ({verdict} the <= {TARGET}x target)")


if __name__ == "__main__":
    main()
