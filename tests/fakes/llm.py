"""Wire-compatible fake LLM HTTP servers for tests.

One :class:`FakeLLMServer` speaks four wire formats at once, picked by request path:

* OpenAI chat completions -- ``POST /v1/chat/completions`` (and ``/chat/completions``),
  ``GET /v1/models`` (and ``/models``); SSE streaming ending with ``data: [DONE]``.
* Anthropic messages -- ``POST /v1/messages`` (and ``/messages``); ``GET /v1/models`` answers in
  the Anthropic shape when the request carries an ``anthropic-version`` or ``x-api-key`` header.
* Ollama -- ``POST /api/chat`` (JSON or NDJSON stream), ``GET /api/tags``, ``POST /api/show``.
* Gemini -- ``POST [/v1beta]/models/{model}:generateContent`` and ``:streamGenerateContent``
  (SSE with ``?alt=sse``, a JSON array without), ``GET /v1beta/models`` (also ``/models`` when an
  ``x-goog-api-key`` header or ``key`` query parameter is present).

Each chat request consumes the next scripted :class:`Turn`; once the script is exhausted every
further chat request is answered with ``text("done")`` (never a tool call, so an agent loop driven
by the fake always terminates). Model listings and ``/api/show`` consume no turn. Every request,
chat or not, is appended to :attr:`FakeLLMServer.requests`.

The fake is as strict as the real servers where they are strict, so that a request only a lenient
server accepts fails here too. Such a request is refused before any turn is consumed (its
:attr:`RecordedRequest.refusal` says how):

* OpenAI wire (llama.cpp's server, the strictest of those that speak it): a message without a
  ``content`` key is HTTP 500 ``'dict object' has no attribute 'content'`` (its chat templates read
  the key of every message); ``tool_choice: "required"`` is HTTP 500; a tool_choice without tools,
  or one it cannot read, is HTTP 400.
* Anthropic: an empty text block is HTTP 400; so is a tool_choice without tools.
* Gemini: an empty text part is HTTP 400 ("empty text parameter").

A scripted turn is then played as the request's tool choice allows (:func:`constrain`): where no
tool may be called -- no tools offered, tool_choice "none", or (OpenAI wire, as llama.cpp's
server reads it) no tool_choice at all -- its tool calls are dropped and it answers in text; where
a named function must be called (OpenAI ``{"type": "function", ...}``, Anthropic
``{"type": "tool"}``, Gemini mode ANY with one allowed name), only calls to that function are kept,
or one with empty arguments is made. :attr:`RecordedRequest.answered` holds the turn as played.

Usage::

    with FakeLLMServer([tool_call("get_time", {"tz": "UTC"}), text("It is noon.")]) as fake:
        litellm.completion(model="openai/fake-small", api_base=fake.url + "/v1", ...)
        assert fake.chat_requests[1].body["messages"][-1]["role"] == "tool"

litellm 1.110.2 against this fake -- ``api_base`` to pass, and the paths the fake then sees::

    provider prefix   api_base        chat request                         get_valid_models(api_base=...)
    ----------------  --------------  -----------------------------------  -----------------------------------
    openai/<m>        url + "/v1"     POST /v1/chat/completions            GET /v1/models
    hosted_vllm/<m>   url + "/v1"     POST /v1/chat/completions            GET /v1/models
    lm_studio/<m>     url + "/v1"     POST /v1/chat/completions            (no request; returns [])
    openrouter/<m>    url + "/v1"     POST /v1/chat/completions            GET /v1/models/user
    xai/<m>           url + "/v1"     POST /v1/chat/completions            GET {api_base}/v1/models, so pass url
    anthropic/<m>     url             POST /v1/messages                    GET /v1/models (x-api-key header)
    gemini/<m>        url             POST /models/<m>:generateContent     GET {api_base}/v1beta/models
                                      (:streamGenerateContent?alt=sse)
    ollama_chat/<m>   url             POST /api/chat                       GET /api/tags

The four OpenAI-compatible providers use ``api_base`` as-is and append ``/chat/completions`` (so
``url`` alone gives ``POST /chat/completions``, which the fake also serves). Anthropic appends
``/v1/messages`` (an api_base ending in /v1 gives /v1/v1/messages). Gemini appends
``/models/<m>:<method>`` with no version (the real service needs api_base ``.../v1beta``, yet model
listing adds ``/v1beta`` itself); it needs an api_key even with a custom api_base and sends it as
``x-goog-api-key``. ollama_chat appends ``/api/chat`` and, after the first success per model and
process, its logging thread POSTs ``/api/show {"name": <m>}`` in the background.

Exception raised by litellm per scripted failure (num_retries=0, max_retries=0). Classes are in
``litellm.exceptions`` (all but MidStreamFallbackError are also ``litellm.<Name>``); every one
subclasses ``openai.APIError``::

    non-streaming   openai      lm_studio   hosted_vllm  xai         openrouter  anthropic   gemini      ollama_chat
    --------------  ----------  ----------  -----------  ----------  ----------  ----------  ----------  ----------
    status(401)     AuthErr     AuthErr     AuthErr      AuthErr     AuthErr     AuthErr     AuthErr     AuthErr
    status(404)     NotFound    NotFound    NotFound     NotFound    NotFound    NotFound    NotFound    NotFound
    status(429)     RateLimit   RateLimit   RateLimit    RateLimit   RateLimit   RateLimit   RateLimit   RateLimit
    status(500)     ISE         ISE         ISE          ISE         APIError    ISE         ISE         ISE
    malformed()     ISE         ISE         APIError     APIError    APIError    APIConnErr  BadRequest  APIConnErr
    truncated()     ISE         ISE         ISE          ISE         APIConnErr  ISE         APIConnErr  APIConnErr
    slow()>timeout  Timeout     Timeout     Timeout      Timeout     Timeout     Timeout     Timeout     Timeout

    streaming       openai      lm_studio   hosted_vllm  xai         openrouter  anthropic   gemini      ollama_chat
    --------------  ----------  ----------  -----------  ----------  ----------  ----------  ----------  ----------
    status(401)     AuthErr     AuthErr     AuthErr      AuthErr     AuthErr     AuthErr     AuthErr     AuthErr
    status(404)     NotFound    NotFound    NotFound     NotFound    NotFound    NotFound    NotFound    NotFound
    status(429)     RateLimit   RateLimit   RateLimit    RateLimit   RateLimit   RateLimit   MidStream   RateLimit
    status(500)     ISE         ISE         ISE          ISE         APIError    ISE         MidStream   ISE
    malformed()     MidStream   MidStream   (none)       (none)      (none)      (none)      (none)      (none)
    truncated()     MidStream   MidStream   MidStream    MidStream   MidStream   MidStream   MidStream   MidStream
    slow()>timeout  Timeout     Timeout     Timeout      Timeout     Timeout     Timeout     Timeout     Timeout

    AuthErr=AuthenticationError  NotFound=NotFoundError  RateLimit=RateLimitError  ISE=InternalServerError
    APIConnErr=APIConnectionError  BadRequest=BadRequestError (status_code 422)  MidStream=MidStreamFallbackError
    (a ServiceUnavailableError carrying status_code and .original_exception, e.g. the RateLimitError)
    (none) = the garbage stream line is skipped and litellm returns an empty reply without raising.
    malformed() in APIError cases carries status_code 200. Retry-After is readable on every 429 as
    ``exc.litellm_response_headers["retry-after"]`` (``exc.response.headers`` only for openai/lm_studio,
    which go through the OpenAI SDK).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

DEFAULT_MODELS: tuple[str, ...] = ("fake-small", "fake-large")
EXHAUSTED_TEXT = "done"

# ---------------------------------------------------------------------------------------------
# Script
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Token counts reported in every successful reply."""

    input_tokens: int = 12
    output_tokens: int = 7

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ToolCall:
    """One tool call in an assistant reply.

    ``arguments`` is a dict (serialised for the wire) or a raw string sent verbatim, which lets a
    test hand the client malformed JSON. Wire formats whose arguments are an object (Anthropic,
    Gemini, Ollama) get the parsed string when it is valid JSON, and the raw string otherwise.
    """

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        """Arguments as the JSON string OpenAI puts on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)

    @property
    def arguments_object(self) -> Any:
        """Arguments as the JSON value object-based wire formats carry."""
        if not isinstance(self.arguments, str):
            return self.arguments
        try:
            return json.loads(self.arguments)
        except ValueError:
            return self.arguments


TurnKind = Literal["reply", "status", "malformed", "truncated", "slow"]


@dataclass(frozen=True)
class Turn:
    """What the server does with one chat request. Build with the helper functions below.

    ``usage`` overrides the server's default for this reply; ``status``/``retry_after``/``body``
    describe an HTTP error (``body`` also holds the ``malformed`` payload); ``seconds``/``then``
    describe a ``slow`` turn.
    """

    kind: TurnKind = "reply"
    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    status: int = 200
    retry_after: int | float | str | None = None
    body: dict[str, Any] | str | None = None
    seconds: float = 0.0
    then: Turn | None = None


def text(content: str, *, usage: Usage | None = None) -> Turn:
    """A plain assistant text answer."""
    return Turn(text=content, usage=usage)


def tool_call(
    name: str,
    arguments: dict[str, Any] | str | None = None,
    *,
    id: str | None = None,
    text: str | None = None,
    usage: Usage | None = None,
) -> Turn:
    """An assistant reply calling one tool (optionally with some text before it)."""
    return Turn(text=text, tool_calls=(ToolCall(name, {} if arguments is None else arguments, id),), usage=usage)


def tool_calls(*calls: ToolCall, text: str | None = None, usage: Usage | None = None) -> Turn:
    """An assistant reply calling several tools in one turn."""
    return Turn(text=text, tool_calls=calls, usage=usage)


def status(
    code: int,
    retry_after: int | float | str | None = None,
    body: dict[str, Any] | str | None = None,
) -> Turn:
    """An HTTP error reply; the body defaults to the wire format's own error shape."""
    return Turn(kind="status", status=code, retry_after=retry_after, body=body)


def malformed(body: str = "<html><body>502 Bad Gateway</body></html>") -> Turn:
    """A 200 reply whose body is not JSON: labelled application/json, or one garbage frame of a stream."""
    return Turn(kind="malformed", body=body)


def truncated(content: str = "This reply is cut short") -> Turn:
    """A 200 reply whose Content-Length promises more bytes than are sent before the socket closes."""
    return Turn(kind="truncated", text=content)


def slow(seconds: float, then: Turn | None = None) -> Turn:
    """Sleep ``seconds`` before playing ``then`` (default: a text answer); for timeout tests."""
    return Turn(kind="slow", seconds=seconds, then=then if then is not None else text("slow reply"))


# ---------------------------------------------------------------------------------------------
# Tool choice: what a request lets the model do, as the real servers read it
# ---------------------------------------------------------------------------------------------

# "none": no tool may be called (no tools offered, or tool_choice says none; llama.cpp's server also reads a
# missing tool_choice so); "auto": the script decides; "any": some tool must be called; else the one tool
# name that must be called.
ToolChoice = str
NO_TOOLS_TEXT = "(the fake model answers in text: this request let it call no tool)"


def _named(choice: Any) -> str | None:
    """The function an OpenAI-style tool_choice names ({"type": "function", "function": {"name": ...}})."""
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        return name if isinstance(name, str) and name else None
    return None


def _offered(body: dict[str, Any]) -> list[str]:
    """The names of the tools a request offers, in any of the four wire shapes."""
    names = []
    for tool in body.get("tools") or ():
        if not isinstance(tool, dict):
            continue
        declarations = tool.get("functionDeclarations") or tool.get("function_declarations")
        if declarations is not None:
            names += [d.get("name", "") for d in declarations]
        else:
            names.append((tool.get("function") or {}).get("name") or tool.get("name") or "")
    return names


def constrain(turn: Turn, choice: ToolChoice, offered: Sequence[str]) -> Turn:
    """The scripted turn as a server honouring `choice` plays it: tool calls dropped where none may be made, and
    a call to the required tool where one must be (the scripted call's arguments if it named that tool)."""
    if turn.kind not in ("reply", "truncated"):
        return turn
    if choice == "none":
        if not turn.tool_calls:
            return turn
        return replace(turn, tool_calls=(), text=turn.text or NO_TOOLS_TEXT)
    if choice == "auto":
        return turn
    if choice == "any":
        return turn if turn.tool_calls else replace(turn, tool_calls=(ToolCall(offered[0] if offered else ""),))
    chosen = tuple(call for call in turn.tool_calls if call.name == choice) or (ToolCall(choice),)
    return replace(turn, tool_calls=chosen)


# ---------------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the fake received it.

    ``headers`` keys are lower-cased; ``body`` is the parsed JSON (None if absent or not JSON);
    ``kind`` is the wire format that answered ("openai", "anthropic", "ollama", "gemini"; None for an
    unknown route); ``turn`` is the scripted turn a chat request consumed (None for other requests).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    kind: str | None = None
    turn: Turn | None = None
    answered: Turn | None = None  # the turn as played, after the request's tool_choice
    refusal: tuple[int, str] | None = None  # (status, message) of a chat request refused as the real servers do


# ---------------------------------------------------------------------------------------------
# Wire formats
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    """A successful reply, resolved for one request."""

    seq: int
    model: str
    text: str | None
    calls: tuple[tuple[str, ToolCall], ...]
    usage: Usage
    created: int


def _pieces(content: str | None) -> list[str]:
    """Split text into word-sized stream deltas."""
    return re.findall(r"\S+\s*|\s+", content or "")


def _halves(content: str) -> list[str]:
    """Split a string into (at most) two non-empty stream deltas."""
    middle = len(content) // 2
    return [part for part in (content[:middle], content[middle:]) if part]


def _sse(payload: Any, event: str | None = None) -> str:
    """Frame one server-sent event."""
    data = payload if isinstance(payload, str) else json.dumps(payload)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {data}\n\n"


class _Dialect:
    """One wire format: success bodies, stream frames, error bodies and model listings."""

    name: ClassVar[str]
    tool_id_prefix: ClassVar[str] = "call_fake_"
    stream_content_type: ClassVar[str] = "text/event-stream"
    error_names: ClassVar[dict[int, str]] = {}

    def refusal(self, body: dict[str, Any]) -> tuple[int, str] | None:
        """(HTTP status, message) with which the real servers of this wire refuse the request, or None."""
        return None

    def tool_choice(self, body: dict[str, Any]) -> ToolChoice:
        """What the request lets the model do with tools: "none", "auto", "any", or the one name it must call."""
        return "auto" if body.get("tools") else "none"

    def complete(self, reply: _Reply) -> Any:
        """The non-streaming response body."""
        raise NotImplementedError

    def stream(self, reply: _Reply, request: dict[str, Any]) -> list[str]:
        """The framed pieces of a streaming response."""
        raise NotImplementedError

    def frame(self, data: str) -> str:
        """Frame one raw piece of a streaming response."""
        return _sse(data)

    def error(self, code: int, message: str) -> Any:
        """The provider's error body for an HTTP status."""
        raise NotImplementedError

    def models(self, models: Sequence[str]) -> Any:
        """The provider's model listing."""
        raise NotImplementedError


class _OpenAI(_Dialect):
    name = "openai"
    error_names = {
        400: "invalid_request_error",
        401: "invalid_api_key",
        403: "permission_denied",
        404: "model_not_found",
        429: "rate_limit_exceeded",
        500: "server_error",
        503: "server_error",
    }

    def refusal(self, body: dict[str, Any]) -> tuple[int, str] | None:
        # llama.cpp's chat templates read message.content of every message: a message without one fails to render.
        for message in body.get("messages") or ():
            if isinstance(message, dict) and "content" not in message:
                return 500, "'dict object' has no attribute 'content'"
        choice = body.get("tool_choice")
        if choice is not None and not body.get("tools"):
            return 400, "tool_choice is only allowed when tools are specified"
        if choice == "required":  # llama-cpp-python's server does not implement it
            return 500, "Invalid tool_choice: 'required'"
        if choice is not None and choice not in ("none", "auto") and _named(choice) is None:
            return 400, f"Invalid tool_choice: {choice!r}"
        return None

    def tool_choice(self, body: dict[str, Any]) -> ToolChoice:
        # As llama.cpp's server does (OpenAI's own defaults to "auto"): no tool_choice, no tools in the prompt.
        choice = body.get("tool_choice")
        if not body.get("tools") or choice in (None, "none"):
            return "none"
        return "auto" if choice == "auto" else _named(choice) or "none"

    def complete(self, reply: _Reply) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
        if reply.calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
                for call_id, c in reply.calls
            ]
        return {
            "id": f"chatcmpl-fake-{reply.seq}",
            "object": "chat.completion",
            "created": reply.created,
            "model": reply.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if reply.calls else "stop",
                }
            ],
            "usage": self._usage(reply.usage),
        }

    def stream(self, reply: _Reply, request: dict[str, Any]) -> list[str]:
        head = {
            "id": f"chatcmpl-fake-{reply.seq}",
            "object": "chat.completion.chunk",
            "created": reply.created,
            "model": reply.model,
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse({**head, "choices": [choice]})

        frames = [chunk({"role": "assistant", "content": ""})]
        frames += [chunk({"content": piece}) for piece in _pieces(reply.text)]
        for index, (call_id, c) in enumerate(reply.calls):
            opening = {"index": index, "id": call_id, "type": "function", "function": {"name": c.name, "arguments": ""}}
            frames.append(chunk({"tool_calls": [opening]}))
            frames += [
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in _halves(c.arguments_json)
            ]
        frames.append(chunk({}, "tool_calls" if reply.calls else "stop"))
        if (request.get("stream_options") or {}).get("include_usage"):
            frames.append(_sse({**head, "choices": [], "usage": self._usage(reply.usage)}))
        frames.append(_sse("[DONE]"))
        return frames

    def error(self, code: int, message: str) -> Any:
        kind = self.error_names.get(code, "api_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}

    def models(self, models: Sequence[str]) -> Any:
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in models],
        }

    @staticmethod
    def _usage(usage: Usage) -> dict[str, int]:
        return {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        }


class _Anthropic(_Dialect):
    name = "anthropic"
    tool_id_prefix = "toolu_fake_"
    error_names = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }

    def refusal(self, body: dict[str, Any]) -> tuple[int, str] | None:
        for index, message in enumerate(body.get("messages") or ()):
            blocks = message.get("content") if isinstance(message, dict) else None
            for block in blocks if isinstance(blocks, list) else ():
                if isinstance(block, dict) and block.get("type") == "text" and not block.get("text"):
                    return 400, f"messages.{index}: text content blocks must be non-empty"
        if body.get("tool_choice") is not None and not body.get("tools"):
            return 400, "tool_choice may only be specified while providing tools"
        return None

    def tool_choice(self, body: dict[str, Any]) -> ToolChoice:
        choice = body.get("tool_choice") or {"type": "auto"}
        if not body.get("tools") or choice.get("type") == "none":
            return "none"
        if choice.get("type") == "tool":
            return str(choice.get("name"))
        return "any" if choice.get("type") == "any" else "auto"

    def complete(self, reply: _Reply) -> Any:
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        content += [
            {"type": "tool_use", "id": call_id, "name": c.name, "input": c.arguments_object}
            for call_id, c in reply.calls
        ]
        return {
            **self._message(reply),
            "content": content,
            "stop_reason": "tool_use" if reply.calls else "end_turn",
            "usage": {"input_tokens": reply.usage.input_tokens, "output_tokens": reply.usage.output_tokens},
        }

    def stream(self, reply: _Reply, request: dict[str, Any]) -> list[str]:
        start = {
            **self._message(reply),
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": reply.usage.input_tokens, "output_tokens": 1},
        }
        frames = [_sse({"type": "message_start", "message": start}, "message_start")]
        index = 0
        if reply.text:
            frames.append(self._block_start(index, {"type": "text", "text": ""}))
            frames += [self._delta(index, {"type": "text_delta", "text": p}) for p in _pieces(reply.text)]
            frames.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
            index += 1
        for call_id, c in reply.calls:
            frames.append(self._block_start(index, {"type": "tool_use", "id": call_id, "name": c.name, "input": {}}))
            frames += [
                self._delta(index, {"type": "input_json_delta", "partial_json": p}) for p in _halves(c.arguments_json)
            ]
            frames.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
            index += 1
        delta = {"stop_reason": "tool_use" if reply.calls else "end_turn", "stop_sequence": None}
        frames.append(
            _sse(
                {"type": "message_delta", "delta": delta, "usage": {"output_tokens": reply.usage.output_tokens}},
                "message_delta",
            )
        )
        frames.append(_sse({"type": "message_stop"}, "message_stop"))
        return frames

    def error(self, code: int, message: str) -> Any:
        return {"type": "error", "error": {"type": self.error_names.get(code, "api_error"), "message": message}}

    def models(self, models: Sequence[str]) -> Any:
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m.replace("-", " ").title(),
                "created_at": "2025-01-01T00:00:00Z",
            }
            for m in models
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }

    @staticmethod
    def _message(reply: _Reply) -> dict[str, Any]:
        return {
            "id": f"msg_fake_{reply.seq}",
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "stop_sequence": None,
        }

    @staticmethod
    def _block_start(index: int, block: dict[str, Any]) -> str:
        return _sse({"type": "content_block_start", "index": index, "content_block": block}, "content_block_start")

    @staticmethod
    def _delta(index: int, delta: dict[str, Any]) -> str:
        return _sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")


class _Ollama(_Dialect):
    name = "ollama"
    stream_content_type = "application/x-ndjson"

    def complete(self, reply: _Reply) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or ""}
        if reply.calls:
            message["tool_calls"] = self._tool_calls(reply)
        return {**self._head(reply), "message": message, **self._done(reply)}

    def stream(self, reply: _Reply, request: dict[str, Any]) -> list[str]:
        frames = [
            {**self._head(reply), "message": {"role": "assistant", "content": piece}, "done": False}
            for piece in _pieces(reply.text)
        ]
        if reply.calls:
            message = {"role": "assistant", "content": "", "tool_calls": self._tool_calls(reply)}
            frames.append({**self._head(reply), "message": message, "done": False})
        frames.append({**self._head(reply), "message": {"role": "assistant", "content": ""}, **self._done(reply)})
        return [self.frame(json.dumps(frame)) for frame in frames]

    def frame(self, data: str) -> str:
        return data + "\n"

    def error(self, code: int, message: str) -> Any:
        return {"error": message}

    def models(self, models: Sequence[str]) -> Any:
        return {
            "models": [
                {
                    "name": m,
                    "model": m,
                    "modified_at": "2025-01-01T00:00:00Z",
                    "size": 1_000_000_000,
                    "digest": f"{index:064x}",
                    "details": self._details(),
                }
                for index, m in enumerate(models, 1)
            ]
        }

    def show(self, model: str) -> Any:
        """The ``/api/show`` body; its template mentions tools so litellm marks tool support."""
        return {
            "modelfile": f"FROM {model}",
            "parameters": "",
            "template": "{{- if .Tools }}{{ .Tools }}{{ end }}{{ .Prompt }}",
            "details": self._details(),
            "model_info": {"general.architecture": "llama", "llama.context_length": 8192},
            "capabilities": ["completion", "tools"],
        }

    @staticmethod
    def _details() -> dict[str, Any]:
        return {"format": "gguf", "family": "llama", "parameter_size": "1B", "quantization_level": "Q4_0"}

    @staticmethod
    def _head(reply: _Reply) -> dict[str, Any]:
        created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reply.created))
        return {"model": reply.model, "created_at": created_at}

    @staticmethod
    def _tool_calls(reply: _Reply) -> list[dict[str, Any]]:
        return [{"function": {"name": c.name, "arguments": c.arguments_object}} for _, c in reply.calls]

    @staticmethod
    def _done(reply: _Reply) -> dict[str, Any]:
        return {
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_000_000,
            "load_duration": 100_000,
            "prompt_eval_count": reply.usage.input_tokens,
            "prompt_eval_duration": 200_000,
            "eval_count": reply.usage.output_tokens,
            "eval_duration": 700_000,
        }


class _Gemini(_Dialect):
    name = "gemini"
    error_names = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }

    def refusal(self, body: dict[str, Any]) -> tuple[int, str] | None:
        for content in body.get("contents") or ():
            for part in content.get("parts") or () if isinstance(content, dict) else ():
                if isinstance(part, dict) and set(part) <= {"text", "thoughtSignature"} and not part.get("text"):
                    return 400, (
                        "Unable to submit request because it has an empty text parameter. "
                        "Add a value to the parameter and try again."
                    )
        return None

    def tool_choice(self, body: dict[str, Any]) -> ToolChoice:
        config = body.get("toolConfig") or body.get("tool_config") or {}
        calling = config.get("functionCallingConfig") or config.get("function_calling_config") or {}
        mode = str(calling.get("mode") or "AUTO").upper()
        allowed = calling.get("allowedFunctionNames") or calling.get("allowed_function_names") or []
        if not body.get("tools") or mode == "NONE":
            return "none"
        if mode == "ANY":
            return allowed[0] if len(allowed) == 1 else "any"
        return "auto"

    def complete(self, reply: _Reply) -> Any:
        parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
        parts += self._calls(reply)
        return self._chunk(reply, parts, final=True)

    def stream(self, reply: _Reply, request: dict[str, Any]) -> list[str]:
        return [_sse(chunk) for chunk in self.chunks(reply)]

    def chunks(self, reply: _Reply) -> list[dict[str, Any]]:
        """The GenerateContentResponse objects of a streamed reply."""
        chunks = [self._chunk(reply, [{"text": piece}], final=False) for piece in _pieces(reply.text)]
        if reply.calls:
            chunks.append(self._chunk(reply, self._calls(reply), final=False))
        chunks.append(self._chunk(reply, [{"text": ""}], final=True))
        return chunks

    def error(self, code: int, message: str) -> Any:
        return {"error": {"code": code, "message": message, "status": self.error_names.get(code, "UNKNOWN")}}

    def models(self, models: Sequence[str]) -> Any:
        return {
            "models": [
                {
                    "name": f"models/{m}",
                    "version": "001",
                    "displayName": m.replace("-", " ").title(),
                    "inputTokenLimit": 1_048_576,
                    "outputTokenLimit": 8192,
                    "supportedGenerationMethods": ["generateContent", "countTokens", "streamGenerateContent"],
                }
                for m in models
            ]
        }

    @staticmethod
    def _calls(reply: _Reply) -> list[dict[str, Any]]:
        return [{"functionCall": {"name": c.name, "args": c.arguments_object}} for _, c in reply.calls]

    @staticmethod
    def _chunk(reply: _Reply, parts: list[dict[str, Any]], *, final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        chunk: dict[str, Any] = {
            "candidates": [candidate],
            "modelVersion": reply.model,
            "responseId": f"fake-{reply.seq}",
        }
        if final:
            candidate["finishReason"] = "STOP"
            chunk["usageMetadata"] = {
                "promptTokenCount": reply.usage.input_tokens,
                "candidatesTokenCount": reply.usage.output_tokens,
                "totalTokenCount": reply.usage.total_tokens,
            }
        return chunk


_OPENAI, _ANTHROPIC, _OLLAMA, _GEMINI = _OpenAI(), _Anthropic(), _Ollama(), _Gemini()
_GEMINI_CHAT = re.compile(
    r"^(?:/v1beta|/v1)?/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$"
)


# ---------------------------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its :class:`FakeLLMServer`."""

    daemon_threads = True
    fake: FakeLLMServer


class _Handler(BaseHTTPRequestHandler):
    """Routes one request to a wire format and plays the scripted turn."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate small writes: without TCP_NODELAY the body waits ~40 ms
    # for the client's delayed ACK on every reply.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _dispatch(self) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        fake._record(record)
        try:
            self._route(record, body if isinstance(body, dict) else {})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. timed out during a slow turn)

    def _route(self, record: RecordedRequest, body: dict[str, Any]) -> None:
        fake = self.server.fake
        method, path, headers, query = record.method, record.path, record.headers, record.query
        gemini_chat = _GEMINI_CHAT.match(path) if method == "POST" else None
        if method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            self._chat(record, _OPENAI, body.get("model", ""), body.get("stream") is True, body)
        elif method == "POST" and path in ("/v1/messages", "/messages"):
            self._chat(record, _ANTHROPIC, body.get("model", ""), body.get("stream") is True, body)
        elif method == "POST" and path == "/api/chat":
            self._chat(record, _OLLAMA, body.get("model", ""), body.get("stream", True) is not False, body)
        elif gemini_chat:
            streaming = gemini_chat["method"] == "streamGenerateContent"
            self._chat(record, _GEMINI, gemini_chat["model"], streaming, body)
        elif method == "GET" and path == "/api/tags":
            record.kind = _OLLAMA.name
            self._send_json(200, _OLLAMA.models(fake.models))
        elif method == "POST" and path == "/api/show":
            record.kind = _OLLAMA.name
            model = body.get("model") or body.get("name") or ""
            if model in fake.models:
                shown = _OLLAMA.show(model)
                shown["model_info"]["llama.context_length"] = fake.contexts.get(model, 8192)
                self._send_json(200, shown)
            else:
                self._send_json(404, _OLLAMA.error(404, f"model '{model}' not found"))
        elif method == "GET" and path in ("/v1/models/user", "/models/user"):
            record.kind = _OPENAI.name  # OpenRouter's per-user catalogue, which litellm lists models from
            self._send_json(200, _OPENAI.models(fake.models))
        elif method == "GET" and path in ("/v1/models", "/models", "/v1beta/models"):
            if path == "/v1beta/models" or "x-goog-api-key" in headers or "key" in query:
                dialect: _Dialect = _GEMINI
            elif "anthropic-version" in headers or "x-api-key" in headers:
                dialect = _ANTHROPIC
            else:
                dialect = _OPENAI
            record.kind = dialect.name
            listing = dialect.models(fake.models)
            if dialect is _OPENAI:  # the context each model runs with, where vLLM states it
                for entry in listing["data"]:
                    if entry["id"] in fake.contexts:
                        entry["max_model_len"] = fake.contexts[entry["id"]]
            self._send_json(200, listing)
        else:
            self._send_json(404, {"error": {"message": f"fake LLM server: no route for {method} {path}"}})

    def _chat(
        self, record: RecordedRequest, dialect: _Dialect, model: str, streaming: bool, body: dict[str, Any]
    ) -> None:
        fake = self.server.fake
        record.kind = dialect.name
        record.refusal = dialect.refusal(body)
        if record.refusal is not None:  # refused as the real servers refuse it: no model turn is played
            self._send_json(record.refusal[0], dialect.error(*record.refusal))
            return
        turn = fake._next_turn()
        record.turn = turn
        while turn.kind == "slow" and turn.then is not None:
            if fake._stopping.wait(turn.seconds):
                return
            turn = turn.then
        if turn.kind == "status":
            self._send_status(dialect, turn)
            return
        turn = constrain(turn, dialect.tool_choice(body), _offered(body))
        record.answered = turn
        # Gemini's streamGenerateContent without ?alt=sse answers one JSON array, not a stream.
        incremental = streaming and (dialect is not _GEMINI or record.query.get("alt") == "sse")
        if turn.kind == "malformed":
            garbage = str(turn.body)
            if incremental:
                self._send_chunked(dialect.stream_content_type, [dialect.frame(garbage)])
            else:
                self._send(200, "application/json", garbage.encode())
            return
        reply = fake._reply(dialect, turn, model)
        if incremental:
            content_type, frames = dialect.stream_content_type, dialect.stream(reply, body)
        elif streaming:
            content_type, frames = "application/json", [json.dumps(_GEMINI.chunks(reply))]
        else:
            content_type, frames = "application/json", [json.dumps(dialect.complete(reply))]
        if turn.kind == "truncated":
            self._send_truncated(content_type, "".join(frames).encode())
        elif incremental:
            self._send_chunked(content_type, frames)
        else:
            self._send(200, content_type, "".join(frames).encode())

    def _send_status(self, dialect: _Dialect, turn: Turn) -> None:
        message = f"fake {turn.status} error"
        if turn.body is None:
            payload, content_type = json.dumps(dialect.error(turn.status, message)).encode(), "application/json"
        elif isinstance(turn.body, str):
            payload, content_type = turn.body.encode(), "text/plain"
        else:
            payload, content_type = json.dumps(turn.body).encode(), "application/json"
        extra = {} if turn.retry_after is None else {"Retry-After": str(turn.retry_after)}
        self._send(turn.status, content_type, payload, extra)

    def _send_json(self, code: int, payload: Any) -> None:
        self._send(code, "application/json", json.dumps(payload).encode())

    def _send(self, code: int, content_type: str, payload: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_chunked(self, content_type: str, frames: Iterable[str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for frame in frames:
            data = frame.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _send_truncated(self, content_type: str, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        self.close_connection = True


# ---------------------------------------------------------------------------------------------
# Public server
# ---------------------------------------------------------------------------------------------


class FakeLLMServer:
    """A scripted LLM server on 127.0.0.1 (random port) speaking OpenAI, Anthropic, Ollama and Gemini.

    ``turns`` are consumed one per chat request; see the module docstring for what happens when
    they run out. ``usage`` is the default token usage of every success reply (a turn may carry
    its own). ``contexts`` gives models a context length, stated as vLLM does (``max_model_len`` in the
    OpenAI listing) and as Ollama does (``model_info``'s ``llama.context_length`` in ``/api/show``, 8192 for
    the others). Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        turns: Iterable[Turn] = (),
        *,
        models: Sequence[str] = DEFAULT_MODELS,
        usage: Usage | None = None,
        contexts: dict[str, int] | None = None,
    ) -> None:
        self.models: list[str] = list(models)
        self.contexts: dict[str, int] = dict(contexts or {})
        self.usage = usage or Usage()
        self.requests: list[RecordedRequest] = []
        self._turns: list[Turn] = list(turns)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash, no path)."""
        if self._httpd is None:
            raise RuntimeError("FakeLLMServer is not started")
        return f"http://127.0.0.1:{self._httpd.server_port}"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The recorded requests that consumed a turn, in order."""
        with self._lock:
            return [r for r in self.requests if r.turn is not None]

    def script(self, *turns: Turn) -> None:
        """Append turns to the script (allowed while running)."""
        with self._lock:
            self._turns.extend(turns)

    def start(self) -> FakeLLMServer:
        """Bind a random port and serve in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("FakeLLMServer already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, waking any request sleeping in a ``slow`` turn."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)

    def _next_turn(self) -> Turn:
        with self._lock:
            return self._turns.pop(0) if self._turns else text(EXHAUSTED_TEXT)

    def _reply(self, dialect: _Dialect, turn: Turn, model: str) -> _Reply:
        seq = next(self._seq)
        calls = tuple((c.id or f"{dialect.tool_id_prefix}{seq}_{index}", c) for index, c in enumerate(turn.tool_calls))
        return _Reply(
            seq=seq,
            model=model,
            text=turn.text,
            calls=calls,
            usage=turn.usage or self.usage,
            created=int(time.time()),
        )
