"""providers.client.complete() through real litellm (nothing patched) against the wire-compatible fake.

Every provider kind: a text answer, a tool call, the tool result carried back in the kind's own wire
shape, the API key in the kind's own header; then each failure as its typed error, the retry
policy, redaction of the key in error messages, cost, and keeping litellm out of the web process.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from providers import client
from providers.choices import ProviderKind
from providers.errors import (
    AuthenticationFailed,
    BadRequest,
    ConversationRefused,
    MalformedResponse,
    ModelNotFound,
    ProviderError,
    RateLimited,
    RequestTimedOut,
    ServerError,
    Unreachable,
)
from providers.models import Provider
from tests.conftest import ROOT, process_env
from tests.fakes.llm import FakeLLMServer, Turn, Usage, malformed, slow, status, text, tool_call, truncated
from tests.providers.conftest import MakeProvider

ALL_KINDS = list(ProviderKind)
every_kind = pytest.mark.parametrize("kind", ALL_KINDS, ids=[k.value for k in ALL_KINDS])

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The current time in an IANA time zone.",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        },
    }
]
QUESTION = [{"role": "user", "content": "What time is it in Paris?"}]

# The wire format litellm speaks to each kind, and the chat path the fake then sees.
WIRE = {
    ProviderKind.ANTHROPIC: "anthropic",
    ProviderKind.GOOGLE: "gemini",
    ProviderKind.OLLAMA: "ollama",
}
CHAT_PATH = {
    ProviderKind.ANTHROPIC: "/v1/messages",
    ProviderKind.GOOGLE: "/v1beta/models/fake-small:generateContent",
    ProviderKind.OLLAMA: "/api/chat",
}


def wire(kind: str) -> str:
    return WIRE.get(kind, "openai")


def chat_path(kind: str) -> str:
    return CHAT_PATH.get(kind, "/v1/chat/completions")


def key_for(kind: str) -> str:
    """A distinctive key per kind, so a header check cannot pass on another kind's key."""
    return f"sk-vigilus-{kind.replace('_', '-')}-7f3a9c41d2"


def key_sent(kind: str, headers: dict[str, str]) -> str | None:
    """The API key as the kind's wire format carries it: x-api-key, x-goog-api-key or a Bearer token."""
    if kind == ProviderKind.ANTHROPIC:
        return headers.get("x-api-key")
    if kind == ProviderKind.GOOGLE:
        return headers.get("x-goog-api-key")
    authorization = headers.get("authorization", "")
    return authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None


def tools_offered(kind: str, body: dict[str, Any]) -> list[str]:
    """Names of the tools a request offered, read in the kind's wire shape."""
    if wire(kind) == "anthropic":
        return [t["name"] for t in body["tools"]]
    if wire(kind) == "gemini":
        return [
            d["name"] for t in body["tools"] for d in t.get("function_declarations") or t.get("functionDeclarations")
        ]
    return [t["function"]["name"] for t in body["tools"]]


def assistant_calls(kind: str, body: dict[str, Any]) -> list[tuple[str | None, str, Any]]:
    """(id, name, arguments) of the tool calls in the assistant turn replayed by a request, in wire shape."""
    if wire(kind) == "anthropic":
        [turn] = [m for m in body["messages"] if m["role"] == "assistant"]
        return [(b["id"], b["name"], b["input"]) for b in turn["content"] if b["type"] == "tool_use"]
    if wire(kind) == "gemini":
        [turn] = [c for c in body["contents"] if c["role"] == "model"]
        calls = [p.get("function_call") or p.get("functionCall") for p in turn["parts"]]
        return [(c.get("id"), c["name"], c["args"]) for c in calls if c]
    [turn] = [m for m in body["messages"] if m["role"] == "assistant"]
    return [(c.get("id"), c["function"]["name"], c["function"]["arguments"]) for c in turn["tool_calls"]]


def tool_results(kind: str, body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """(tool call id, result) pairs carried by the last message of a request, in the kind's wire shape."""
    if wire(kind) == "anthropic":
        last = body["messages"][-1]
        assert last["role"] == "user"
        return [(b["tool_use_id"], b["content"]) for b in last["content"] if b["type"] == "tool_result"]
    if wire(kind) == "gemini":
        last = body["contents"][-1]
        assert last["role"] == "user"
        responses = [p.get("function_response") or p.get("functionResponse") for p in last["parts"]]
        return [(r.get("id"), r["response"]["content"]) for r in responses if r]
    last = body["messages"][-1]
    assert last["role"] == "tool"
    return [(m.get("tool_call_id"), m["content"]) for m in body["messages"] if m["role"] == "tool"]


def closed_port() -> int:
    """A local port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_user_facing(error: ProviderError, provider: Provider) -> None:
    """A typed error of ours, whose message names the endpoint and reads as a sentence, not a dump."""
    assert type(error).__module__ == "providers.errors", f"a raw {type(error).__module__} exception escaped"
    message = str(error)
    assert provider.endpoint in message
    assert "Traceback (most recent call last)" not in message, f"a traceback reached the message: {message!r}"
    assert len(message) < 600


# --- success, every kind ------------------------------------------------------------------------


@every_kind
def test_text_answer_is_normalised(kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer) -> None:
    provider = make_provider(kind, api_key=key_for(kind))
    llm_server.script(text("It is noon in Paris.", usage=Usage(input_tokens=21, output_tokens=9)))

    answer = client.complete(provider, QUESTION, timeout=10)

    assert answer.text == "It is noon in Paris."
    assert answer.tool_calls == []
    assert answer.finish_reason == "stop"
    assert answer.usage == client.Usage(prompt_tokens=21, completion_tokens=9, total_tokens=30)
    assert isinstance(answer.latency_ms, int)
    assert answer.latency_ms >= 0
    assert answer.model == "fake-small"
    assert answer.cost is None or isinstance(answer.cost, float)
    [request] = llm_server.chat_requests
    assert (request.method, request.path, request.kind) == ("POST", chat_path(kind), wire(kind))


@every_kind
def test_api_key_is_sent_in_the_kinds_header(kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer) -> None:
    provider = make_provider(kind, api_key=key_for(kind))

    client.complete(provider, QUESTION, timeout=10)

    [request] = llm_server.chat_requests
    assert key_sent(kind, request.headers) == key_for(kind)
    assert key_for(kind) not in json.dumps(request.query)  # a header, never the URL


@pytest.mark.parametrize("kind", [ProviderKind.OPENAI_COMPATIBLE, ProviderKind.VLLM, ProviderKind.LM_STUDIO])
def test_local_kind_without_a_key_sends_the_placeholder(
    kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    provider = make_provider(kind)

    assert client.complete(provider, QUESTION, timeout=10).text == "done"

    [request] = llm_server.chat_requests
    assert request.headers["authorization"] == f"Bearer {client.PLACEHOLDER_KEY}"


@every_kind
def test_tool_call_then_tool_result_in_the_kinds_wire_shape(
    kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    provider = make_provider(kind, api_key=key_for(kind))
    llm_server.script(tool_call("get_time", {"tz": "Europe/Paris"}), text("It is 13:00 in Paris."))
    messages: list[dict[str, Any]] = list(QUESTION)

    first = client.complete(provider, messages, tools=TOOLS, timeout=10)

    assert first.finish_reason == "tool_calls"
    [call] = first.tool_calls
    assert (call.name, call.arguments, call.error) == ("get_time", {"tz": "Europe/Paris"}, None)
    assert call.id
    assert json.loads(call.raw_arguments) == {"tz": "Europe/Paris"}
    assert tools_offered(kind, llm_server.chat_requests[0].body) == ["get_time"]

    messages.append(
        {
            "role": "assistant",
            "content": first.text or None,
            "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.raw_arguments}}
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "13:00 CEST"})

    second = client.complete(provider, messages, tools=TOOLS, timeout=10)

    assert second.text == "It is 13:00 in Paris."
    assert second.finish_reason == "stop"
    body = llm_server.chat_requests[1].body
    [(call_id, name, arguments)] = assistant_calls(kind, body)
    assert name == "get_time"
    # OpenAI's wire carries arguments as a JSON string; Anthropic, Gemini and Ollama as an object.
    assert (json.loads(arguments) if wire(kind) == "openai" else arguments) == {"tz": "Europe/Paris"}
    results = tool_results(kind, body)
    assert [content for _, content in results] == ["13:00 CEST"]
    if wire(kind) != "ollama":  # Ollama's wire has no call ids; it matches results by order
        assert call_id == call.id
        assert [result_id for result_id, _ in results] == [call.id]


@every_kind
def test_malformed_tool_arguments_come_back_as_an_error_not_an_exception(
    kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    provider = make_provider(kind, api_key=key_for(kind))
    llm_server.script(tool_call("get_time", "{not json"))

    answer = client.complete(provider, QUESTION, tools=TOOLS, timeout=10)

    [call] = answer.tool_calls
    assert call.name == "get_time"
    assert call.arguments == {}
    assert call.error
    if wire(kind) in ("openai", "ollama"):
        assert call.raw_arguments == "{not json"
        assert "not valid JSON" in call.error
    else:  # object-based wires carry the raw string as a JSON string value
        assert json.loads(call.raw_arguments) == "{not json"
        assert "must be a JSON object" in call.error


def test_cost_is_known_for_a_priced_model(make_provider: MakeProvider, llm_server: FakeLLMServer) -> None:
    provider = make_provider(ProviderKind.OPENAI, api_key=key_for(ProviderKind.OPENAI), default_model="gpt-4o-mini")
    llm_server.script(text("priced", usage=Usage(input_tokens=1000, output_tokens=500)))

    answer = client.complete(provider, QUESTION, timeout=10)

    assert isinstance(answer.cost, float)
    assert answer.cost > 0
    assert answer.model == "gpt-4o-mini"


def test_model_argument_overrides_the_default(make_provider: MakeProvider, llm_server: FakeLLMServer) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)

    answer = client.complete(provider, QUESTION, model="fake-large", timeout=10)

    assert answer.model == "fake-large"
    assert llm_server.chat_requests[0].body["model"] == "fake-large"


# --- failures, every kind -----------------------------------------------------------------------

FAILURES: dict[str, tuple[Turn, type[ProviderError]]] = {
    "401": (status(401), AuthenticationFailed),
    "404": (status(404), ModelNotFound),
    "429": (status(429, retry_after=7), RateLimited),
    "500": (status(500), ServerError),
}
# A 200 whose body is not JSON. litellm reports it differently per kind; what reaches the person is
# MalformedResponse, except for Gemini, where litellm raises BadRequestError (status 422) and the
# mapping gives BadRequest.
MALFORMED_AS = {ProviderKind.GOOGLE: BadRequest}


@every_kind
@pytest.mark.parametrize("failure", [*FAILURES, "malformed"])
def test_failure_maps_to_a_typed_error_naming_the_endpoint(
    kind: str, failure: str, make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    provider = make_provider(kind, api_key=key_for(kind))
    if failure == "malformed":
        turn, expected = malformed(), MALFORMED_AS.get(kind, MalformedResponse)
    else:
        turn, expected = FAILURES[failure]
    llm_server.script(turn)

    with pytest.raises(ProviderError) as raised:
        client.complete(provider, QUESTION, timeout=10, max_retries=0)

    assert type(raised.value) is expected
    assert_user_facing(raised.value, provider)
    if failure == "429":
        assert raised.value.retry_after == 7.0
    assert len(llm_server.chat_requests) == 1


@every_kind
def test_slow_answer_past_the_timeout_is_request_timed_out(
    kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    provider = make_provider(kind, api_key=key_for(kind))
    llm_server.script(slow(10))

    started = time.monotonic()
    with pytest.raises(RequestTimedOut) as raised:
        client.complete(provider, QUESTION, timeout=0.5, max_retries=0)
    elapsed = time.monotonic() - started

    assert 0.4 < elapsed < 3.0, f"gave up after {elapsed:.2f} s for a 0.5 s timeout"
    assert_user_facing(raised.value, provider)


@every_kind
def test_closed_port_is_unreachable(kind: str, make_provider: MakeProvider) -> None:
    provider = make_provider(kind, api_key=key_for(kind), url=f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(ProviderError) as raised:
        client.complete(provider, QUESTION, timeout=5, max_retries=0)

    assert type(raised.value) is Unreachable, f"{type(raised.value).__name__}: {raised.value}"
    assert_user_facing(raised.value, provider)
    assert "HTTP 500" not in str(raised.value)  # nothing answered, so no status to report


@every_kind
def test_reply_cut_short_is_not_reported_as_unreachable(
    kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    """The server answered (200, then closed mid-body): telling the person it cannot be reached is wrong."""
    provider = make_provider(kind, api_key=key_for(kind))
    llm_server.script(truncated())

    with pytest.raises(ProviderError) as raised:
        client.complete(provider, QUESTION, timeout=10, max_retries=0)

    assert type(raised.value) is not Unreachable, str(raised.value)
    assert_user_facing(raised.value, provider)


def test_no_model_at_all_is_a_bad_request(make_provider: MakeProvider, llm_server: FakeLLMServer) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE, default_model="")

    with pytest.raises(BadRequest, match="no default model"):
        client.complete(provider, QUESTION)

    assert llm_server.requests == []


# --- retries ------------------------------------------------------------------------------------

retry_kinds = pytest.mark.parametrize(
    "kind",
    [ProviderKind.OPENAI_COMPATIBLE, ProviderKind.ANTHROPIC, ProviderKind.OLLAMA, ProviderKind.GOOGLE],
    ids=lambda k: k.value,
)


@retry_kinds
def test_server_error_is_retried_then_succeeds(
    kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer, fast_backoff: None
) -> None:
    provider = make_provider(kind, api_key=key_for(kind))
    llm_server.script(status(500), text("second time lucky"))

    answer = client.complete(provider, QUESTION, timeout=10, max_retries=2)

    assert answer.text == "second time lucky"
    assert len(llm_server.chat_requests) == 2


@retry_kinds
def test_authentication_failure_is_never_retried(
    kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer, fast_backoff: None
) -> None:
    provider = make_provider(kind, api_key=key_for(kind))
    llm_server.script(status(401), text("never reached"))

    with pytest.raises(AuthenticationFailed):
        client.complete(provider, QUESTION, timeout=10, max_retries=3)

    assert len(llm_server.chat_requests) == 1


@pytest.mark.parametrize("turn", [status(404), malformed()], ids=["404", "malformed"])
def test_permanent_failures_are_not_retried(
    turn: Turn, make_provider: MakeProvider, llm_server: FakeLLMServer, fast_backoff: None
) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    llm_server.script(turn, text("never reached"))

    with pytest.raises(ProviderError):
        client.complete(provider, QUESTION, timeout=10, max_retries=3)

    assert len(llm_server.chat_requests) == 1


@retry_kinds
def test_rate_limit_with_retry_after_zero_is_retried(
    kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer, fast_backoff: None
) -> None:
    provider = make_provider(kind, api_key=key_for(kind))
    llm_server.script(status(429, retry_after=0), text("after the pause"))

    answer = client.complete(provider, QUESTION, timeout=10, max_retries=2)

    assert answer.text == "after the pause"
    assert len(llm_server.chat_requests) == 2


def test_retry_after_is_honoured(make_provider: MakeProvider, llm_server: FakeLLMServer, fast_backoff: None) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    llm_server.script(status(429, retry_after=1), text("waited"))

    started = time.monotonic()
    answer = client.complete(provider, QUESTION, timeout=10, max_retries=1)

    assert answer.text == "waited"
    assert time.monotonic() - started >= 1.0


def test_retry_after_is_capped(
    make_provider: MakeProvider, llm_server: FakeLLMServer, fast_backoff: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "BACKOFF_CAP", 0.2)
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    llm_server.script(status(429, retry_after=3600), text("not an hour later"))

    started = time.monotonic()
    assert client.complete(provider, QUESTION, timeout=10, max_retries=1).text == "not an hour later"
    assert time.monotonic() - started < 5


def test_backoff_grows_exponentially(
    make_provider: MakeProvider, llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "BACKOFF_BASE", 0.1)
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    llm_server.script(*passing_faults(3), text("fourth"))

    started = time.monotonic()
    answer = client.complete(provider, QUESTION, timeout=10, max_retries=3)

    assert answer.text == "fourth"
    assert len(llm_server.chat_requests) == 4
    assert time.monotonic() - started >= 0.1 + 0.2 + 0.4


def test_retries_give_up_after_max_retries(
    make_provider: MakeProvider, llm_server: FakeLLMServer, fast_backoff: None
) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    llm_server.script(*passing_faults(3), text("too late"))

    with pytest.raises(ServerError) as raised:
        client.complete(provider, QUESTION, timeout=10, max_retries=2)

    assert type(raised.value) is ServerError
    assert len(llm_server.chat_requests) == 3


def passing_faults(count: int) -> list[Turn]:
    """HTTP 500s that differ from each other, as a server under passing trouble answers."""
    return [
        status(500, body={"error": {"message": f"worker {n} restarting", "type": "server_error"}}) for n in range(count)
    ]


@pytest.mark.parametrize("kind", [ProviderKind.OPENAI_COMPATIBLE, ProviderKind.ANTHROPIC], ids=lambda k: k.value)
def test_the_same_server_error_twice_is_the_server_refusing_the_conversation(
    kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer, fast_backoff: None
) -> None:
    """A chat template that cannot render the conversation fails the same way every time: asked twice with the same
    answer, it is reported as refusing this conversation, not retried again as if it would pass."""
    provider = make_provider(kind, api_key=key_for(kind))
    refusal = {"error": {"message": "'dict object' has no attribute 'content'", "type": "server_error"}}
    llm_server.script(status(500, body=refusal), status(500, body=refusal), text("never reached"))

    with pytest.raises(ConversationRefused) as raised:
        client.complete(provider, QUESTION, timeout=10, max_retries=5)

    assert len(llm_server.chat_requests) == 2
    assert not raised.value.transient
    message = str(raised.value)
    assert "refuses this conversation" in message and "has no attribute 'content'" in message
    assert_user_facing(raised.value, provider)


# --- requests every real server accepts -----------------------------------------------------------------------


@every_kind
def test_tools_are_offered_with_tool_choice_auto(
    kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    """llama.cpp's server reads a missing tool_choice as "none" and leaves the tools out of the prompt."""
    provider = make_provider(kind, api_key=key_for(kind))
    llm_server.script(tool_call("get_time", {"tz": "UTC"}))

    answer = client.complete(provider, QUESTION, tools=TOOLS, timeout=10)

    assert [call.name for call in answer.tool_calls] == ["get_time"]
    body = llm_server.chat_requests[0].body
    if kind in OPENAI_WIRE_KINDS:
        assert body["tool_choice"] == "auto"


OPENAI_WIRE_KINDS = [k for k in ALL_KINDS if wire(k) == "openai"]


@pytest.mark.parametrize("kind", [*OPENAI_WIRE_KINDS, ProviderKind.ANTHROPIC, ProviderKind.GOOGLE], ids=str)
def test_a_named_function_is_called(kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer) -> None:
    provider = make_provider(kind, api_key=key_for(kind))
    other = {"type": "function", "function": {"name": "get_date", "parameters": {"type": "object", "properties": {}}}}
    llm_server.script(text("I would rather chat."))

    answer = client.complete(
        provider, QUESTION, tools=[*TOOLS, other], tool_choice={"type": "function", "function": {"name": "get_date"}}
    )

    assert [call.name for call in answer.tool_calls] == ["get_date"]


@every_kind
@pytest.mark.parametrize("stored", [None, ""], ids=["content-None", "content-empty"])
def test_a_tool_call_turn_is_sent_in_the_shape_the_kinds_server_accepts(
    kind: str, stored: str | None, make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    """Runs store the model's tool-call turn with content None (older runs) or "": OpenAI-style servers need a
    content string (llama.cpp answers a missing one with HTTP 500), Gemini refuses an empty text part."""
    provider = make_provider(kind, api_key=key_for(kind))
    history = [
        *QUESTION,
        {
            "role": "assistant",
            "content": stored,
            "tool_calls": [
                {"id": "call1", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call1", "content": "12:00"},
    ]
    llm_server.script(text("It is noon."))

    assert client.complete(provider, history, tools=TOOLS, timeout=10, max_retries=0).text == "It is noon."
    assert history[1]["content"] == stored  # the stored conversation is not changed


# --- tool arguments -----------------------------------------------------------------------------------


def test_a_raw_newline_inside_an_argument_string_is_read(
    make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    """Small models write a newline into a command as it is; the meaning is plain, so it is read, not refused."""
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    llm_server.script(tool_call("get_time", '{"tz": "Europe/\nParis"}'.replace("\\n", "\n")))

    [call] = client.complete(provider, QUESTION, tools=TOOLS, timeout=10).tool_calls

    assert (call.arguments, call.error) == ({"tz": "Europe/\nParis"}, None)


def test_arguments_encoded_twice_are_read(make_provider: MakeProvider, llm_server: FakeLLMServer) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    llm_server.script(tool_call("get_time", json.dumps(json.dumps({"tz": "UTC"}))))

    [call] = client.complete(provider, QUESTION, tools=TOOLS, timeout=10).tool_calls

    assert (call.arguments, call.error) == ({"tz": "UTC"}, None)


def test_unreadable_arguments_are_explained_cleanly(make_provider: MakeProvider, llm_server: FakeLLMServer) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    llm_server.script(tool_call("get_time", '{"tz": "UTC" "when": 1}'))

    [call] = client.complete(provider, QUESTION, tools=TOOLS, timeout=10).tool_calls

    assert call.arguments == {}
    assert call.error == "arguments are not valid JSON: Expecting ',' delimiter at character 14 of 23"


@pytest.mark.parametrize("turn", [status(500), status(429, retry_after=0)], ids=["500", "429"])
def test_max_retries_zero_raises_at_once(
    turn: Turn, make_provider: MakeProvider, llm_server: FakeLLMServer, fast_backoff: None
) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE)
    llm_server.script(turn, text("never reached"))

    with pytest.raises((ServerError, RateLimited)):
        client.complete(provider, QUESTION, timeout=10, max_retries=0)

    assert len(llm_server.chat_requests) == 1


def test_unreachable_is_retried(make_provider: MakeProvider, fast_backoff: None) -> None:
    provider = make_provider(ProviderKind.OLLAMA, url=f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(Unreachable):
        client.complete(provider, QUESTION, timeout=5, max_retries=2)


# --- secrets ------------------------------------------------------------------------------------

LEAKY_KEY = "sk-vigilus-LEAKCHECK-d41d8cd98f00b204"


@every_kind
def test_api_key_echoed_by_a_401_is_redacted(kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer) -> None:
    provider = make_provider(kind, api_key=LEAKY_KEY)
    llm_server.script(status(401, body={"error": {"message": f"Incorrect API key provided: {LEAKY_KEY}."}}))

    with pytest.raises(AuthenticationFailed) as raised:
        client.complete(provider, QUESTION, timeout=10, max_retries=0)

    for text_ in (str(raised.value), repr(raised.value), raised.value.message, *map(str, raised.value.args)):
        assert LEAKY_KEY not in text_
        assert LEAKY_KEY[-12:] not in text_
    assert_user_facing(raised.value, provider)


@pytest.mark.parametrize("code", [401, 403, 404, 500])
def test_api_key_echoed_in_a_plain_text_error_is_redacted(
    code: int, make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    provider = make_provider(ProviderKind.OPENAI_COMPATIBLE, api_key=LEAKY_KEY)
    llm_server.script(status(code, body=f"key {LEAKY_KEY} is not welcome here"))

    with pytest.raises(ProviderError) as raised:
        client.complete(provider, QUESTION, timeout=10, max_retries=0)

    assert LEAKY_KEY not in str(raised.value)
    assert LEAKY_KEY not in repr(raised.value)


# --- litellm stays out of the web process -------------------------------------------------------


def fresh_process_env(data_dir: Any) -> dict[str, str]:
    """A process starting like a fresh install: its own empty data directory, SQLite there."""
    env = process_env(DJANGO_SETTINGS_MODULE="vigilus.settings", VIGILUS_DATA_DIR=str(data_dir))
    env.pop("DATABASE_URL")
    return env


IMPORT_PROBE = """
import sys
import django
django.setup()
after_setup = "litellm" in sys.modules
import providers.client, providers.errors, providers.kinds, providers.models
print(after_setup, "litellm" in sys.modules)
"""


def test_importing_the_client_does_not_import_litellm(tmp_path: Any) -> None:
    env = fresh_process_env(tmp_path)

    out = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )

    after_setup, after_import = out.stdout.split()
    assert after_setup == "False", "django.setup() imported litellm"
    assert after_import == "False", "importing providers.client imported litellm"


FIRST_CALL_PROBE = """
import logging, sys, time
import django
django.setup()
logging.disable(logging.CRITICAL)
from providers import client
from providers.models import Provider
from tests.fakes.llm import FakeLLMServer
with FakeLLMServer() as fake:
    provider = Provider(name="probe", kind="openai_compatible", base_url=fake.url + "/v1", default_model="fake-small")
    started = time.monotonic()
    answer = client.complete(provider, [{"role": "user", "content": "hi"}], timeout=30)
    wall_ms = (time.monotonic() - started) * 1000
    print("litellm" in sys.modules, answer.latency_ms, round(wall_ms))
"""


def test_first_call_latency_does_not_count_loading_litellm(tmp_path: Any) -> None:
    """latency_ms is the model's answer time: the one-off lazy import of litellm (seconds) is not in it."""
    env = fresh_process_env(tmp_path)

    out = subprocess.run(
        [sys.executable, "-c", FIRST_CALL_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert out.returncode == 0, out.stderr[-2000:]
    loaded, latency_ms, wall_ms = out.stdout.split()[-3:]
    assert loaded == "True"
    # The fake answers at once; a warm first call takes ~0.1 s here, importing litellm ~2.5 s.
    assert int(latency_ms) < 1000, f"first call reported {latency_ms} ms of a {wall_ms} ms call"


@every_kind
def test_stored_secrets_never_reach_the_model_provider(
    kind: str, make_provider: MakeProvider, llm_server: FakeLLMServer
) -> None:
    """A stored secret that found its way into the conversation — a system prompt a person typed, a tool's output,
    a tool's description — is masked in what is sent, whatever the kind's wire format."""
    from vigilus.redaction import MASK

    key = key_for(kind)
    provider = make_provider(kind, api_key=key)
    vault = make_provider(ProviderKind.OPENAI, api_key="vault-backup-key-7731-zz")  # no shape gives it away
    stored = Provider.objects.get(pk=vault.pk).api_key  # decrypting it teaches this process the value
    llm_server.script(text("ok"))
    tool = {
        "type": "function",
        "function": {"name": "lookup", "description": f"uses {stored}", "parameters": {"type": "object"}},
    }
    conversation = [
        {"role": "system", "content": f"The backup key is {stored}."},
        {"role": "user", "content": "check the backups"},
    ]

    client.complete(provider, conversation, tools=[tool], timeout=10)

    [request] = llm_server.chat_requests
    sent = json.dumps(request.body)
    assert stored not in sent and MASK in sent
    assert conversation[0]["content"] == f"The backup key is {stored}."  # what is stored is left as it is
