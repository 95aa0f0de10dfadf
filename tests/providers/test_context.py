"""Runs that fit the model: complete() keeps the conversation inside the model's context window, learns the
window from the server where it says, and fails with a plain sentence where nothing can make it fit."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from providers import client, context
from providers.choices import ProviderKind
from providers.errors import ContextExceeded
from tests.fakes.llm import FakeLLMServer, status, text
from tests.providers.conftest import MakeProvider

SYSTEM = {"role": "system", "content": "You look after a homelab. " * 20}
TASK = {"role": "user", "content": "Find out why the nas container keeps restarting. " * 10}
OVERFLOW = "This model's maximum context length is {limit} tokens. However, you requested 5000 tokens."


def exchange(number: int, output: str) -> list[dict[str, Any]]:
    """One step of a run: the model's call and the tool's output, as the agent stores them."""
    call_id = f"call{number}"
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "shell__run_command", "arguments": f'{{"command": "journalctl -n {number}"}}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": output},
    ]


def conversation(steps: int, output_chars: int, latest_chars: int | None = None) -> list[dict[str, Any]]:
    messages = [SYSTEM, TASK]
    for number in range(1, steps + 1):
        size = latest_chars if number == steps and latest_chars is not None else output_chars
        messages += exchange(number, f"step {number}: " + "x" * size)
    return messages


def sent_messages(server: FakeLLMServer) -> list[dict[str, Any]]:
    return server.chat_requests[-1].body["messages"]


@pytest.fixture(autouse=True)
def _forget_windows() -> None:
    context.forget()


def test_a_conversation_that_fits_is_sent_as_it_is(make_provider: MakeProvider, llm_server: FakeLLMServer) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    messages = conversation(steps=3, output_chars=500)

    client.complete(provider, messages, timeout=10)

    sent = sent_messages(llm_server)
    assert [m.get("content") or "" for m in sent] == [m.get("content") or "" for m in messages]
    assert not any("were cut" in (m.get("content") or "") for m in sent)


def test_older_tool_outputs_are_cut_first_and_marked_the_task_and_latest_step_kept_whole(
    make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    provider.context_windows = {"fake-small": 4096}
    provider.save()
    messages = conversation(steps=5, output_chars=3000)

    answer = client.complete(provider, messages, timeout=10)

    assert answer.text == "done"
    sent = sent_messages(llm_server)
    assert len(sent) == len(messages)
    assert sent[0]["content"] == SYSTEM["content"] and sent[1]["content"] == TASK["content"]
    assert sent[-2]["tool_calls"] == messages[-2]["tool_calls"] and sent[-1]["content"] == messages[-1]["content"]
    older_outputs = [m["content"] for m in sent[2:-2] if m["role"] == "tool"]
    assert all("were cut to fit fake-small's context" in output for output in older_outputs[:1])
    assert all(len(output) < 3000 for output in older_outputs[:1])
    assert all(m["content"].startswith("step ") for m in sent if m["role"] == "tool")  # the head stays
    assert context.estimate(sent) <= 4096
    assert messages[3]["content"].endswith("x" * 100)  # what is stored is not touched


def test_a_latest_output_bigger_than_the_window_is_read_in_part_not_failing_the_run(
    make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    """A read that printed more than a small model can take (`ps aux` on a busy host): the model gets its head,
    marked as cut, and answers; what is stored stays whole."""
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE, default_model="llama3.1")
    provider.context_windows = {"llama3.1": 8192}
    provider.save()
    messages = conversation(steps=2, output_chars=100, latest_chars=40_000)

    assert client.complete(provider, messages, timeout=10).text == "done"

    sent = sent_messages(llm_server)
    latest = sent[-1]["content"]
    assert latest.startswith(messages[-1]["content"][:1000]) and latest.endswith("were cut to fit llama3.1's context]")
    assert 10_000 < len(latest) < 40_000
    assert context.estimate(sent) <= 8192 - context.answer_reserve(8192)
    assert len(messages[-1]["content"]) >= 40_000


def test_a_conversation_that_cannot_fit_fails_with_a_plain_sentence_and_nothing_is_sent(
    make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE, default_model="llama3.1")
    provider.context_windows = {"llama3.1": 8192}
    provider.save()
    messages = [SYSTEM, {"role": "user", "content": "check these hosts: " + "nas-01 " * 6000}]  # the task alone

    with pytest.raises(ContextExceeded) as raised:
        client.complete(provider, messages, timeout=10)

    assert str(raised.value).startswith("the conversation no longer fits llama3.1's 8,192-token context")
    assert "litellm" not in str(raised.value)
    assert llm_server.chat_requests == []


def test_tool_schemas_count_against_the_window(make_provider: MakeProvider, llm_server: FakeLLMServer) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    provider.context_windows = {"fake-small": 2048}
    provider.save()
    schema = {
        "type": "object",
        "properties": {f"option_{i}": {"type": "string", "description": "y" * 80} for i in range(8)},
    }
    tools = [{"type": "function", "function": {"name": f"tool_{n}", "parameters": schema}} for n in range(8)]

    with pytest.raises(ContextExceeded, match="the tool schemas alone take about"):
        client.complete(provider, [SYSTEM, TASK], tools=tools, timeout=10)

    assert llm_server.chat_requests == []
    assert client.complete(provider, [SYSTEM, TASK], tools=tools[:1], timeout=10).text == "done"


def test_the_window_a_vllm_server_states_is_used(make_provider: MakeProvider) -> None:
    with FakeLLMServer(contexts={"fake-small": 2048}) as server:
        provider = make_provider(ProviderKind.VLLM, url=server.url)

        assert context.context_window(provider, "fake-small") == context.Window(2048, "server")
        client.complete(provider, conversation(steps=4, output_chars=2000), timeout=10)
        sent = server.chat_requests[-1].body["messages"]

    assert any("were cut to fit fake-small's context" in (m["content"] or "") for m in sent)


def test_the_providers_setting_wins_over_the_server(make_provider: MakeProvider) -> None:
    with FakeLLMServer(contexts={"fake-small": 2048}) as server:
        provider = make_provider(ProviderKind.VLLM, url=server.url)
        provider.context_windows = {"fake-small": 16_384}

        assert context.context_window(provider, "fake-small") == context.Window(16_384, "setting")


def test_a_local_server_that_says_nothing_gets_the_default(make_provider: MakeProvider) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)

    assert context.context_window(provider, "fake-small") == context.Window(8192, "default")


@pytest.mark.parametrize(
    ("trained", "setting", "num_ctx"),
    [(131_072, None, 8192), (4096, None, 4096), (131_072, 32_768, 32_768), (8192, 32_768, 8192)],
)
def test_ollama_is_asked_for_the_context_vigilus_plans_for(
    trained: int, setting: int | None, num_ctx: int, make_provider: MakeProvider
) -> None:
    """Ollama runs with a small num_ctx of its own and cuts longer prompts in silence: Vigilus sends num_ctx,
    its setting (else 8,192), never more than the model's trained length."""
    with FakeLLMServer(contexts={"fake-small": trained}) as server:
        provider = make_provider(ProviderKind.OLLAMA, url=server.url)
        if setting:
            provider.context_windows = {"fake-small": setting}
            provider.save()

        client.complete(provider, [TASK], timeout=10)

        [chat] = server.chat_requests
    assert chat.body["options"]["num_ctx"] == num_ctx


def test_a_server_refusing_the_conversation_as_too_long_teaches_its_window(
    make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    messages = conversation(steps=4, output_chars=2000)  # fits the assumed 8,192, not the server's 2,048
    too_long = {"error": {"message": OVERFLOW.format(limit=2048), "type": "invalid_request_error"}}
    llm_server.script(status(400, body=too_long), text("fits now"))

    answer = client.complete(provider, messages, timeout=10, max_retries=0)

    assert answer.text == "fits now"
    first, second = (r.body["messages"] for r in llm_server.chat_requests)
    assert not any("were cut" in (m["content"] or "") for m in first)
    assert any("were cut to fit fake-small's context" in (m["content"] or "") for m in second)
    assert context.context_window(provider, "fake-small") == context.Window(2048, "learned")


def test_a_context_overflow_surfaces_as_one_clean_sentence(
    make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    too_long = {"error": {"message": OVERFLOW.format(limit=1024), "type": "invalid_request_error"}}
    llm_server.script(status(400, body=too_long), status(400, body=too_long))

    with pytest.raises(ContextExceeded) as raised:
        client.complete(provider, [SYSTEM, TASK], timeout=10, max_retries=0)

    message = str(raised.value)
    assert message.startswith("the conversation no longer fits fake-small's 1,024-token context")
    assert "litellm" not in message and "Error:" not in message
    assert len(llm_server.chat_requests) == 2


def test_estimate_errs_on_the_long_side_of_english() -> None:
    """About four bytes of English make a token; the estimate counts three, so it cuts a little early rather
    than send what the server refuses."""
    sentence = "The backup job on the nas finished at three in the morning without errors. "
    assert context.estimate_text(sentence * 10) >= len(sentence * 10) / 4


class _LlamaServerHandler(BaseHTTPRequestHandler):
    """What llama.cpp's llama-server states: the trained length in /v1/models, the one it runs with in /props."""

    def do_GET(self) -> None:
        bodies = {
            "/v1/models": {"data": [{"id": "../models/qwen.gguf", "meta": {"n_ctx_train": 32768}}]},
            "/props": {"default_generation_settings": {"n_ctx": 4096}},
        }
        payload = json.dumps(bodies.get(self.path, {})).encode()
        self.send_response(200 if self.path in bodies else 404)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_llama_servers_running_context_is_read_from_its_props(make_provider: MakeProvider) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LlamaServerHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = make_provider(ProviderKind.OPENAI_COMPATIBLE, url=f"http://127.0.0.1:{server.server_port}")

        assert context.context_window(provider, "qwen") == context.Window(4096, "server")
    finally:
        server.shutdown()
        server.server_close()
