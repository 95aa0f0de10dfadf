"""Drive real litellm (nothing patched) against the fake LLM servers, for every provider kind.

The expected exception classes below are the ones litellm 1.110.2 was observed to raise; they are
mirrored in the table at the top of ``tests/fakes/llm.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")
litellm.suppress_debug_info = True

from tests.fakes.llm import (  # noqa: E402 - litellm must be importable first
    DEFAULT_MODELS,
    EXHAUSTED_TEXT,
    FakeLLMServer,
    ToolCall,
    Turn,
    Usage,
    malformed,
    slow,
    status,
    text,
    tool_call,
    tool_calls,
    truncated,
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time in a timezone.",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        },
    }
]
NO_ERROR = "-"


@dataclass(frozen=True)
class Kind:
    """A litellm provider prefix, how to point it at the fake, and what it raises on each failure."""

    prefix: str
    suffix: str  # appended to fake.url to form api_base
    chat_path: str  # path the fake sees for a non-streaming chat request
    wire: str  # wire format the fake answered with
    errors: dict[str, str]  # failure -> litellm exception class name, non-streaming
    stream_errors: dict[str, str]  # failure -> litellm exception class name (or NO_ERROR), streaming

    def __str__(self) -> str:
        return self.prefix


def _errors(malformed_: str, truncated_: str, server_error: str = "InternalServerError") -> dict[str, str]:
    return {
        "401": "AuthenticationError",
        "404": "NotFoundError",
        "429": "RateLimitError",
        "500": server_error,
        "malformed": malformed_,
        "truncated": truncated_,
        "timeout": "Timeout",
    }


def _stream_errors(
    malformed_: str, rate_limit: str = "RateLimitError", server_error: str = "InternalServerError"
) -> dict[str, str]:
    return {
        "401": "AuthenticationError",
        "404": "NotFoundError",
        "429": rate_limit,
        "500": server_error,
        "malformed": malformed_,
        "truncated": "MidStreamFallbackError",
        "timeout": "Timeout",
    }


V1_CHAT = "/v1/chat/completions"
KINDS = [
    Kind(
        "openai",
        "/v1",
        V1_CHAT,
        "openai",
        _errors("InternalServerError", "InternalServerError"),
        _stream_errors("MidStreamFallbackError"),
    ),
    Kind(
        "anthropic",
        "",
        "/v1/messages",
        "anthropic",
        _errors("APIConnectionError", "InternalServerError"),
        _stream_errors(NO_ERROR),
    ),
    Kind(
        "gemini",
        "",
        "/models/fake-small:generateContent",
        "gemini",
        _errors("BadRequestError", "APIConnectionError"),
        _stream_errors(NO_ERROR, "MidStreamFallbackError", "MidStreamFallbackError"),
    ),
    Kind(
        "ollama_chat",
        "",
        "/api/chat",
        "ollama",
        _errors("APIConnectionError", "APIConnectionError"),
        _stream_errors(NO_ERROR),
    ),
    Kind(
        "hosted_vllm",
        "/v1",
        V1_CHAT,
        "openai",
        _errors("APIError", "InternalServerError"),
        _stream_errors(NO_ERROR),
    ),
    Kind(
        "lm_studio",
        "/v1",
        V1_CHAT,
        "openai",
        _errors("InternalServerError", "InternalServerError"),
        _stream_errors("MidStreamFallbackError"),
    ),
    Kind(
        "openrouter",
        "/v1",
        V1_CHAT,
        "openai",
        _errors("APIError", "APIConnectionError", "APIError"),
        _stream_errors(NO_ERROR, server_error="APIError"),
    ),
    Kind(
        "xai",
        "/v1",
        V1_CHAT,
        "openai",
        _errors("APIError", "InternalServerError"),
        _stream_errors(NO_ERROR),
    ),
]
FAILURES: dict[str, Turn] = {
    "401": status(401),
    "404": status(404),
    "429": status(429, retry_after=7),
    "500": status(500),
    "malformed": malformed(),
    "truncated": truncated(),
    "timeout": slow(3),
}
STREAM_FAILURES = ("401", "404", "429", "500", "malformed", "truncated", "timeout")

kinds = pytest.mark.parametrize("kind", KINDS, ids=str)


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def complete(kind: Kind, fake: FakeLLMServer, messages: list[dict[str, Any]] | None = None, **kwargs: Any) -> Any:
    """Call litellm.completion for ``kind`` against ``fake`` with retries off."""
    options: dict[str, Any] = {"num_retries": 0, "max_retries": 0, "timeout": 5, "api_key": "sk-fake"}
    return litellm.completion(
        model=f"{kind.prefix}/fake-small",
        api_base=fake.url + kind.suffix,
        messages=messages or [{"role": "user", "content": "What time is it?"}],
        **{**options, **kwargs},
    )


def tool_results(wire: str, body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """(tool call id, result) pairs carried by the last message of a request, in each wire shape."""
    if wire == "anthropic":
        last = body["messages"][-1]
        assert last["role"] == "user"
        return [(b["tool_use_id"], b["content"]) for b in last["content"] if b["type"] == "tool_result"]
    if wire == "gemini":
        last = body["contents"][-1]
        assert last["role"] == "user"
        # litellm writes the protobuf-JSON snake_case spelling; Google accepts both.
        responses = [p.get("function_response") or p.get("functionResponse") for p in last["parts"]]
        return [(r.get("id"), r["response"]["content"]) for r in responses if r]
    messages = [m for m in body["messages"] if m["role"] == "tool"]  # openai and ollama
    return [(m.get("tool_call_id"), m["content"]) for m in messages]


# --- success paths ------------------------------------------------------------------------------


@kinds
def test_text_answer(kind: Kind, fake: FakeLLMServer) -> None:
    fake.script(text("Hello from the fake."))

    response = complete(kind, fake)

    assert response.choices[0].message.content == "Hello from the fake."
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (12, 7)
    [request] = fake.chat_requests
    assert (request.method, request.path, request.kind) == ("POST", kind.chat_path, kind.wire)


@kinds
def test_tool_calls_then_tool_results(kind: Kind, fake: FakeLLMServer) -> None:
    fake.script(
        tool_calls(ToolCall("get_time", {"tz": "UTC"}), ToolCall("get_time", {"tz": "Europe/Paris"})),
        text("It is noon in UTC and 1pm in Paris."),
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What time is it?"}]

    first = complete(kind, fake, messages, tools=TOOLS, tool_choice="auto")

    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_time", {"tz": "UTC"}),
        ("get_time", {"tz": "Europe/Paris"}),
    ]
    replayed = first.choices[0].message.model_dump()
    if kind.wire == "openai":  # litellm drops a None content, and llama.cpp's server refuses the message then
        replayed["content"] = replayed["content"] or ""
    messages.append(replayed)
    messages += [{"role": "tool", "tool_call_id": c.id, "content": f"result {i}"} for i, c in enumerate(calls)]

    second = complete(kind, fake, messages, tools=TOOLS, tool_choice="auto")

    assert second.choices[0].message.content == "It is noon in UTC and 1pm in Paris."
    results = tool_results(kind.wire, fake.chat_requests[1].body)
    assert results == [(c.id, f"result {i}") for i, c in enumerate(calls)]


@kinds
def test_streaming_text_and_tool_call(kind: Kind, fake: FakeLLMServer) -> None:
    fake.script(text("streamed hello world"), tool_call("get_time", {"tz": "UTC"}, text="Let me check."))

    def stream() -> Any:
        chunks = list(
            complete(kind, fake, stream=True, stream_options={"include_usage": True}, tools=TOOLS, tool_choice="auto")
        )
        assert len(chunks) > 2
        return litellm.stream_chunk_builder(chunks)

    answer = stream()
    assert answer.choices[0].message.content == "streamed hello world"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 7)

    called = stream()
    [call] = called.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_time", {"tz": "UTC"})
    assert called.choices[0].message.content == "Let me check."
    assert called.choices[0].finish_reason == "tool_calls"


def test_async_completion_and_stream(fake: FakeLLMServer) -> None:
    fake.script(text("async hello"), text("async stream"))
    kind = KINDS[0]

    async def run() -> tuple[Any, list[Any]]:
        options: dict[str, Any] = {"api_base": fake.url + kind.suffix, "api_key": "sk-fake", "max_retries": 0}
        messages = [{"role": "user", "content": "hi"}]
        answer = await litellm.acompletion(model="openai/fake-small", messages=messages, **options)
        stream = await litellm.acompletion(model="openai/fake-small", messages=messages, stream=True, **options)
        return answer, [chunk async for chunk in stream]

    answer, chunks = asyncio.run(run())

    assert answer.choices[0].message.content == "async hello"
    assert litellm.stream_chunk_builder(chunks).choices[0].message.content == "async stream"


def test_usage_is_configurable() -> None:
    with FakeLLMServer([text("a"), text("b", usage=Usage(3, 4))], usage=Usage(100, 50)) as server:
        first, second = complete(KINDS[0], server), complete(KINDS[0], server)

    assert (first.usage.prompt_tokens, first.usage.completion_tokens, first.usage.total_tokens) == (100, 50, 150)
    assert (second.usage.prompt_tokens, second.usage.completion_tokens) == (3, 4)


def test_exhausted_script_answers_done(fake: FakeLLMServer) -> None:
    fake.script(text("only turn"))

    answers = [complete(KINDS[0], fake).choices[0].message.content for _ in range(3)]

    assert answers == ["only turn", EXHAUSTED_TEXT, EXHAUSTED_TEXT]


def test_slow_turn_answers_after_delay_within_timeout(fake: FakeLLMServer) -> None:
    fake.script(slow(0.3, then=text("worth the wait")))

    assert complete(KINDS[0], fake, timeout=5).choices[0].message.content == "worth the wait"


def test_raw_string_arguments_reach_the_client_verbatim(fake: FakeLLMServer) -> None:
    fake.script(tool_call("get_time", '{"tz": "UTC"'))

    [call] = complete(KINDS[0], fake, tools=TOOLS, tool_choice="auto").choices[0].message.tool_calls

    assert call.function.arguments == '{"tz": "UTC"'


def test_ollama_history_with_invalid_arguments_fails_before_sending(fake: FakeLLMServer) -> None:
    """litellm json.loads() assistant tool-call arguments for Ollama; invalid JSON never leaves the client."""
    ollama = next(k for k in KINDS if k.prefix == "ollama_chat")
    history = [
        {"role": "user", "content": "What time is it?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{bad"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "error: invalid arguments"},
    ]

    with pytest.raises(litellm.APIConnectionError):
        complete(ollama, fake, history, tools=TOOLS)

    assert fake.chat_requests == []


def test_ollama_chat_looks_model_up_on_api_show_in_background() -> None:
    """After the first success per model, litellm's logging thread POSTs /api/show (cost/model info)."""
    with FakeLLMServer(models=["show-probe"]) as server:
        litellm.completion(
            model="ollama_chat/show-probe", api_base=server.url, messages=[{"role": "user", "content": "hi"}]
        )
        deadline = time.monotonic() + 5
        while len(server.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    assert [(r.path, (r.body or {}).get("name")) for r in server.requests] == [
        ("/api/chat", None),
        ("/api/show", "show-probe"),
    ]


# --- as strict as the real servers -------------------------------------------------------------

CALL_TURN = [{"role": "user", "content": "What time is it?"}]
REPLAYED_CALL = {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}}


def _post(url: str, data: dict[str, Any]) -> tuple[int, Any]:
    """(status, JSON body) of a POST, HTTP errors included."""
    request = urllib.request.Request(url, data=json.dumps(data).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_an_assistant_message_without_content_is_refused_like_llama_cpp(fake: FakeLLMServer) -> None:
    """llama.cpp's chat templates read `content` of every message: litellm drops a None content, so a tool-call
    turn stored with content None fails there with HTTP 500. The script is not consumed by a refused request."""
    fake.script(text("answered"))
    history = [*CALL_TURN, {"role": "assistant", "tool_calls": [REPLAYED_CALL]}]
    history.append({"role": "tool", "tool_call_id": "c1", "content": "noon"})

    with pytest.raises(litellm.InternalServerError, match="has no attribute 'content'"):
        complete(KINDS[0], fake, history, tools=TOOLS, tool_choice="auto")
    history[1]["content"] = ""
    answer = complete(KINDS[0], fake, history, tools=TOOLS, tool_choice="auto")

    assert answer.choices[0].message.content == "answered"
    assert [r.refusal for r in fake.requests] == [(500, "'dict object' has no attribute 'content'"), None]


@pytest.mark.parametrize(
    ("tool_choice", "played"),
    [
        (None, []),  # llama.cpp's server reads no tool_choice as "none" (OpenAI's own would say "auto")
        ("none", []),
        ("auto", [("get_time", {"tz": "UTC"})]),
        ({"type": "function", "function": {"name": "get_time"}}, [("get_time", {"tz": "UTC"})]),
        ({"type": "function", "function": {"name": "get_date"}}, [("get_date", {})]),
    ],
    ids=["missing", "none", "auto", "named", "named-other"],
)
def test_openai_wire_honours_tool_choice(tool_choice: Any, played: list[Any], fake: FakeLLMServer) -> None:
    fake.script(tool_call("get_time", {"tz": "UTC"}))
    tools = [*TOOLS, {"type": "function", "function": {"name": "get_date", "parameters": {"type": "object"}}}]
    choice = {} if tool_choice is None else {"tool_choice": tool_choice}

    status_, body = _post(
        fake.url + "/v1/chat/completions", {"model": "m", "messages": CALL_TURN, "tools": tools, **choice}
    )

    assert status_ == 200
    message = body["choices"][0]["message"]
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message.get("tool_calls") or ()]
    assert calls == played
    assert bool(message["content"]) is not bool(played)  # a text answer where no call may be made


def test_openai_wire_refuses_required_and_a_tool_choice_without_tools(fake: FakeLLMServer) -> None:
    fake.script(tool_call("get_time", {"tz": "UTC"}))
    url = fake.url + "/v1/chat/completions"

    required = _post(url, {"model": "m", "messages": CALL_TURN, "tools": TOOLS, "tool_choice": "required"})
    without_tools = _post(url, {"model": "m", "messages": CALL_TURN, "tool_choice": "auto"})

    assert required[0] == 500 and "required" in required[1]["error"]["message"]
    assert without_tools[0] == 400
    assert fake.chat_requests == []  # refused before the script: the tool call is still to be played


def test_no_tools_offered_means_no_tool_call_on_every_wire(fake: FakeLLMServer) -> None:
    for kind in KINDS:
        fake.script(tool_call("get_time", {"tz": "UTC"}, text="Let me look."))
        answer = complete(kind, fake)
        assert not answer.choices[0].message.tool_calls, kind
        assert answer.choices[0].message.content == "Let me look.", kind


@pytest.mark.parametrize(
    ("prefix", "forced"),
    [
        ("anthropic", {"type": "function", "function": {"name": "get_date"}}),
        ("gemini", {"type": "function", "function": {"name": "get_date"}}),
    ],
)
def test_named_tool_choice_is_honoured_on_anthropic_and_gemini(prefix: str, forced: Any, fake: FakeLLMServer) -> None:
    kind = next(k for k in KINDS if k.prefix == prefix)
    tools = [*TOOLS, {"type": "function", "function": {"name": "get_date", "parameters": {"type": "object"}}}]
    fake.script(tool_call("get_time", {"tz": "UTC"}), tool_call("get_time", {"tz": "UTC"}))

    forced_answer = complete(kind, fake, tools=tools, tool_choice=forced)
    none_answer = complete(kind, fake, tools=tools, tool_choice="none")

    assert [c.function.name for c in forced_answer.choices[0].message.tool_calls] == ["get_date"]
    assert not none_answer.choices[0].message.tool_calls


def test_anthropic_refuses_an_empty_text_block(fake: FakeLLMServer) -> None:
    messages = [*CALL_TURN, {"role": "assistant", "content": [{"type": "text", "text": ""}]}]

    status_, body = _post(fake.url + "/v1/messages", {"model": "m", "max_tokens": 10, "messages": messages})

    assert status_ == 400 and "non-empty" in body["error"]["message"]


def test_gemini_refuses_an_empty_text_part(fake: FakeLLMServer) -> None:
    """litellm turns an assistant content "" beside tool calls into an empty text part, which Gemini refuses."""
    fake.script(text("answered"))
    history = [*CALL_TURN, {"role": "assistant", "content": "", "tool_calls": [REPLAYED_CALL]}]
    history.append({"role": "tool", "tool_call_id": "c1", "content": "noon"})
    gemini = next(k for k in KINDS if k.prefix == "gemini")

    with pytest.raises(litellm.BadRequestError, match="empty text parameter"):
        complete(gemini, fake, history, tools=TOOLS)
    history[1]["content"] = None

    assert complete(gemini, fake, history, tools=TOOLS).choices[0].message.content == "answered"


# --- failures -----------------------------------------------------------------------------------


@kinds
@pytest.mark.parametrize("failure", list(FAILURES))
def test_failure_maps_to_litellm_exception(kind: Kind, failure: str, fake: FakeLLMServer) -> None:
    fake.script(FAILURES[failure])
    expected = getattr(litellm.exceptions, kind.errors[failure])

    with pytest.raises(expected) as raised:
        complete(kind, fake, timeout=0.5 if failure == "timeout" else 5)

    assert type(raised.value) is expected
    if failure == "429":
        assert raised.value.status_code == 429
        assert dict(raised.value.litellm_response_headers)["retry-after"] == "7"


@kinds
@pytest.mark.parametrize("failure", STREAM_FAILURES)
def test_streaming_failure_maps_to_litellm_exception(kind: Kind, failure: str, fake: FakeLLMServer) -> None:
    fake.script(FAILURES[failure])
    timeout = 0.5 if failure == "timeout" else 5

    def consume() -> list[Any]:
        return list(complete(kind, fake, stream=True, timeout=timeout))

    if kind.stream_errors[failure] == NO_ERROR:  # the garbage line is skipped: an empty, "successful" reply
        assert not litellm.stream_chunk_builder(consume()).choices[0].message.content
        return
    expected = getattr(litellm.exceptions, kind.stream_errors[failure])
    with pytest.raises(expected) as raised:
        consume()
    assert type(raised.value) is expected
    if expected is litellm.exceptions.MidStreamFallbackError and failure != "malformed":
        assert raised.value.original_exception is not None


# --- model listings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "suffix", "path", "expected"),
    [
        ("openai", "/v1", "/v1/models", ["fake-small", "fake-large"]),
        ("hosted_vllm", "/v1", "/v1/models", ["fake-small", "fake-large"]),
        ("openrouter", "/v1", "/v1/models/user", ["openrouter/fake-small", "openrouter/fake-large"]),
        ("xai", "", "/v1/models", ["xai/fake-small", "xai/fake-large"]),
        ("anthropic", "", "/v1/models", ["anthropic/fake-small", "anthropic/fake-large"]),
        ("gemini", "", "/v1beta/models", ["gemini/fake-small", "gemini/fake-large"]),
        ("ollama", "", "/api/tags", ["ollama/fake-large", "ollama/fake-small"]),
    ],
)
def test_litellm_model_discovery(
    provider: str, suffix: str, path: str, expected: list[str], fake: FakeLLMServer
) -> None:
    models = litellm.get_valid_models(
        check_provider_endpoint=True, custom_llm_provider=provider, api_key="sk-fake", api_base=fake.url + suffix
    )

    assert models == expected
    assert [r.path for r in fake.requests] == [path]


def _get(url: str, headers: dict[str, str] | None = None, data: dict[str, Any] | None = None) -> Any:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read())


def test_models_listing_shape_follows_headers() -> None:
    with FakeLLMServer(models=["m1"]) as server:
        openai_shape = _get(server.url + "/v1/models")
        anthropic_shape = _get(server.url + "/v1/models", {"anthropic-version": "2023-06-01"})
        gemini_shape = _get(server.url + "/v1beta/models")
        ollama_show = _get(server.url + "/api/show", data={"model": "m1"})
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(server.url + "/api/show", data={"model": "nope"})

    assert openai_shape == {
        "object": "list",
        "data": [{"id": "m1", "object": "model", "created": 1700000000, "owned_by": "fake"}],
    }
    assert anthropic_shape["has_more"] is False
    assert anthropic_shape["data"][0] | {"created_at": None} == {
        "type": "model",
        "id": "m1",
        "display_name": "M1",
        "created_at": None,
    }
    assert gemini_shape["models"][0]["name"] == "models/m1"
    assert "tools" in ollama_show["capabilities"]
    assert missing.value.code == 404


def test_default_models_and_request_recording(fake: FakeLLMServer) -> None:
    listing = _get(fake.url + "/models", {"Authorization": "Bearer sk-test"})

    assert [m["id"] for m in listing["data"]] == list(DEFAULT_MODELS)
    [request] = fake.requests
    assert (request.method, request.path, request.kind, request.turn) == ("GET", "/models", "openai", None)
    assert request.headers["authorization"] == "Bearer sk-test"


def test_gemini_stream_without_sse_is_one_json_array(fake: FakeLLMServer) -> None:
    fake.script(text("two words"))

    chunks = _get(fake.url + "/v1beta/models/fake-small:streamGenerateContent", data={"contents": []})

    assert "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"]) == "two words"
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 19
