"""What providers.client.complete() costs per call over the bare HTTP request it makes.

Runs against the in-process fake LLM server (zero latency), so the figures are client overhead:
litellm's request building, response parsing, logging and cost lookup, plus our normalisation.
The peers are the same OpenAI chat-completions request body POSTed with httpx, once through one
reused httpx.Client (connection kept alive) and once with a fresh httpx.post() per call.

    .venv/bin/python bench/providers_client.py [N]
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import throwaway_vigilus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
WARMUP = 20
MESSAGES = [
    {"role": "system", "content": "You are a homelab operator. Answer briefly."},
    {"role": "user", "content": "Is the nas container healthy?"},
]


def measure(call: Callable[[], object], n: int) -> list[float]:
    """Wall time of each of n calls, in milliseconds."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def main() -> None:
    throwaway_vigilus()
    import httpx
    from django.contrib.auth.models import User

    from providers import client
    from providers.choices import ProviderKind
    from providers.services import create_provider
    from tests.fakes.llm import FakeLLMServer

    logging.disable(logging.CRITICAL)  # litellm logs every call at INFO; printing it is not what we measure
    actor = User.objects.create_user("bench")

    with FakeLLMServer() as fake:  # once its script is empty, every chat request gets text("done")
        provider = create_provider(
            actor=actor,
            name="bench",
            kind=ProviderKind.OPENAI_COMPATIBLE,
            base_url=fake.url + "/v1",
            api_key="sk-bench-not-secret",
            default_model="fake-small",
        )
        url = provider.endpoint + "/chat/completions"
        body = {"model": "fake-small", "messages": MESSAGES}
        headers = {"Authorization": "Bearer sk-bench-not-secret"}

        def via_client() -> object:
            answer = client.complete(provider, MESSAGES, timeout=30, max_retries=0)
            assert answer.text == "done"
            return answer

        session = httpx.Client(timeout=30)

        def via_reused_httpx() -> object:
            response = session.post(url, json=body, headers=headers)
            response.raise_for_status()
            return response.json()

        def via_fresh_httpx() -> object:
            response = httpx.post(url, json=body, headers=headers, timeout=30)
            response.raise_for_status()
            return response.json()

        started = time.perf_counter()
        client.litellm()
        import_ms = (time.perf_counter() - started) * 1000
        for call in (via_client, via_reused_httpx, via_fresh_httpx):
            measure(call, WARMUP)
        before = len(fake.chat_requests)
        results = {
            "providers.client.complete": measure(via_client, N),
            "httpx.Client (reused)": measure(via_reused_httpx, N),
            "httpx.post (fresh each)": measure(via_fresh_httpx, N),
        }
        session.close()
        served = len(fake.chat_requests) - before

    baseline = statistics.median(results["httpx.Client (reused)"])
    print(f"providers.client.complete vs direct httpx, N={N} calls each after {WARMUP} warm-up calls each")
    print("fake LLM server in-process, zero latency (TCP_NODELAY), openai_compatible wire; figures are per call")
    print(f"litellm import (once per process, lazy): {import_ms:.0f} ms")
    print(f"fake served {served} chat requests (expected {3 * N})")
    print()
    print(f"{'path':<28}{'median ms':>11}{'p95 ms':>10}{'mean ms':>10}{'x reused httpx':>16}")
    for name, times in results.items():
        median = statistics.median(times)
        ratio = median / baseline
        print(f"{name:<28}{median:>11.2f}{p95(times):>10.2f}{statistics.fmean(times):>10.2f}{ratio:>15.1f}x")
    ours = statistics.median(results["providers.client.complete"])
    fresh = statistics.median(results["httpx.post (fresh each)"])
    print()
    print(f"overhead of complete() over reused httpx: {ours - baseline:+.2f} ms/call (x{ours / baseline:.1f})")
    print(f"overhead of complete() over fresh httpx.post: {ours - fresh:+.2f} ms/call (x{ours / fresh:.1f})")


if __name__ == "__main__":
    main()
