"""The one function the agent loop calls to talk to a model: `complete()`.

Messages and tool schemas in (OpenAI chat format, which litellm translates for every kind); a
normalised `Completion` out. Failures raise the typed errors of providers.errors, with transient
ones retried with exponential backoff (honouring Retry-After).

litellm is imported here, lazily, on the first call: importing it costs seconds and ~200 MB, which
the web process must not pay. Its remote cost-map fetch is disabled before that import.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any

from providers.choices import ProviderKind, Wire
from providers.context import Window, answer_reserve, context_window, fit, learn
from providers.errors import (
    AuthenticationFailed,
    BadRequest,
    ContextExceeded,
    ConversationRefused,
    MalformedResponse,
    ModelNotFound,
    ProviderError,
    RateLimited,
    RequestTimedOut,
    ServerError,
    Unreachable,
)
from providers.kinds import spec
from providers.models import Provider
from vigilus.redaction import redact_data

logger = logging.getLogger("vigilus.providers")

DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 2
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
# Local servers do not check keys, but OpenAI-style clients insist on sending one.
PLACEHOLDER_KEY = "not-needed"


@dataclass(frozen=True)
class ModelToolCall:
    """A tool call as the model asked for it in a completion (the run stores it as an `operators.ToolCall`)."""

    id: str
    name: str
    arguments: dict[str, Any]  # {} when the model's arguments were not a JSON object; see `error`
    raw_arguments: str
    error: str | None = None  # why the arguments could not be parsed, for the model to be told


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    tool_calls: list[ModelToolCall] = field(default_factory=list)
    finish_reason: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None  # USD, where litellm knows the model's price
    latency_ms: int = 0
    model: str = ""


@cache
def litellm() -> ModuleType:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm as module

    module.telemetry = False
    module.suppress_debug_info = True
    module.drop_params = True  # a parameter a kind does not support is dropped, not an error
    # litellm's loggers print to stdout through handlers of their own, past the redacting filter:
    # route them through ours instead, and keep only warnings.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        library_logger = logging.getLogger(name)
        library_logger.handlers.clear()
        library_logger.propagate = True
        library_logger.setLevel(logging.WARNING)
    return module


def litellm_arguments(provider: Provider, model: str) -> dict[str, Any]:
    """How litellm addresses this provider: prefixed model name, api_base, api_key."""
    kind = spec(provider.kind)
    return {
        "model": kind.litellm_prefix + model,
        "api_base": provider.endpoint + kind.completion_path,
        "api_key": provider.api_key or PLACEHOLDER_KEY,
    }


def complete(
    provider: Provider,
    messages: list[dict[str, Any]],
    *,
    model: str | None = None,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: str | dict | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    max_tokens: int | None = None,
) -> Completion:
    """Ask the provider's model (or `model`) for the next message. Raises ProviderError subclasses.

    With tools offered, `tool_choice` is "auto" unless the caller names a function
    ({"type": "function", "function": {"name": ...}}): OpenAI documents "auto" as the default, but servers
    such as llama.cpp's read a missing tool_choice as "none" and leave the tools out of the prompt. The
    conversation is fitted to the model's context window (providers.context) before it is sent."""
    chosen = (model or provider.default_model).strip()
    if not chosen:
        raise BadRequest(f"No model chosen, and {provider.name} has no default model.")
    kind = spec(provider.kind)
    kwargs: dict[str, Any] = {
        **litellm_arguments(provider, chosen),
        "timeout": timeout,
        "num_retries": 0,
        "max_retries": 0,
    }
    # Vigilus's own secrets never leave the machine, not even to the model: whatever reached the conversation (a
    # system prompt, a tool's description, text stored before the secret was) is masked on the way out.
    tools = redact_data(tools) if tools else tools
    if tools:
        kwargs["tools"] = tools
        kwargs["tool_choice"] = "auto" if tool_choice is None else tool_choice
    sendable = redact_data(wire_messages(kind.wire, messages))

    def fit_to(window: Window) -> None:
        answer = max_tokens
        if answer is None and kind.local:
            # A local model's answer gets the room fitting keeps for it: prompt and answer then fit the window
            # together, and a small model that rambles on cannot hold a worker until its context is full.
            answer = answer_reserve(window.tokens)
        if answer is not None:
            kwargs["max_tokens"] = answer
        if provider.kind == ProviderKind.OLLAMA:
            kwargs["num_ctx"] = window.tokens  # else Ollama runs with its own smaller default, cutting in silence
        kwargs["messages"] = fit(sendable, model=chosen, window=window, tools=tools, max_tokens=answer)

    window = context_window(provider, chosen)
    fit_to(window)
    attempt = 0
    refitted = False
    previous: ServerError | None = None
    library = litellm()  # the first call imports it: not part of the latency
    while True:
        started = time.monotonic()
        try:
            response = library.completion(**kwargs)
            return normalise(response, latency_ms=int((time.monotonic() - started) * 1000), model=chosen)
        except Exception as exc:
            error = exc if isinstance(exc, ProviderError) else translate(exc, provider)
        if isinstance(error, ContextExceeded) and not refitted:
            # The server counts with the model's own tokenizer and knows its real window: keep below what it
            # says (or, when it does not say, a quarter below what was assumed) and try once more.
            refitted = True
            limit = error.limit if error.limit and error.limit < window.tokens else int(window.tokens * 0.75)
            learn(provider, chosen, limit)
            window = context_window(provider, chosen)
            fit_to(window)
            logger.warning("%s: too long for %s; refitted to %s", provider.name, chosen, window.describe())
            continue
        if isinstance(error, ContextExceeded):
            raise ContextExceeded(
                f"the conversation no longer fits {chosen}'s {window.tokens:,}-token context "
                f"({provider.endpoint} refused it as too long)",
                error.limit,
            )
        if isinstance(error, ServerError) and previous is not None and error.message == previous.message:
            raise ConversationRefused(
                f"{provider.endpoint} refuses this conversation: it failed twice with the same answer, "
                f"so it is not a passing fault (HTTP {error.status}): {error.detail}",
                error.status,
                error.detail,
            )
        if not error.transient or attempt >= max_retries:
            raise error
        previous = error if isinstance(error, ServerError) else None
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
        if isinstance(error, RateLimited) and error.retry_after is not None:
            delay = min(BACKOFF_CAP, max(delay, error.retry_after))
        attempt += 1
        logger.warning("%s: %s; retry %d/%d in %.1f s", provider.name, error.label, attempt, max_retries, delay)
        time.sleep(delay)


def wire_messages(wire: Wire, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as the kind's server accepts them; `messages` itself when nothing needs changing.

    OpenAI-style servers: every assistant message has a `content` string ("" beside tool calls; litellm drops
    a None, and llama.cpp's chat templates then fail on the missing key), every tool result is a string and
    call arguments are JSON text. Gemini: no empty text beside tool calls (litellm would send an empty text
    part, which Gemini refuses). Runs stored before this normalisation (content None) are sent the same way."""
    sendable = messages
    for index, message in enumerate(messages):
        changed = _wire_message(wire, message)
        if changed is not message:
            if sendable is messages:
                sendable = list(messages)
            sendable[index] = changed
    return sendable


def _wire_message(wire: Wire, message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    content = message.get("content")
    if wire == Wire.GEMINI:
        if role == "assistant" and message.get("tool_calls") and content == "":
            return {**message, "content": None}
        return message
    if wire != Wire.OPENAI:
        return message
    if role == "assistant":
        calls = message.get("tool_calls") or []
        unencoded = [c for c in calls if not isinstance((c.get("function") or {}).get("arguments", ""), str)]
        if content is not None and not unencoded:
            return message
        fixed = {**message, "content": content if content is not None else ""}
        if unencoded:  # arguments stored as an object: OpenAI's wire carries them as JSON text
            fixed["tool_calls"] = [
                {**c, "function": {**c["function"], "arguments": json.dumps(c["function"]["arguments"])}}
                if c in unencoded
                else c
                for c in calls
            ]
        return fixed
    if role == "tool" and not isinstance(content, str):
        return {**message, "content": "" if content is None else json.dumps(content)}
    return message


def normalise(response: Any, *, latency_ms: int, model: str) -> Completion:
    """litellm's ModelResponse as a Completion; malformed tool arguments are reported, not raised."""
    try:
        choice = response.choices[0]
        message = choice.message
    except (AttributeError, IndexError, TypeError):
        raise MalformedResponse("The endpoint's answer has no message.") from None
    calls = []
    for call in getattr(message, "tool_calls", None) or []:
        raw = call.function.arguments or ""
        arguments, error = parse_arguments(raw)
        calls.append(ModelToolCall(call.id or new_call_id(), call.function.name or "", arguments, raw, error))
    usage = getattr(response, "usage", None)
    return Completion(
        text=message.content or "",
        tool_calls=calls,
        finish_reason=choice.finish_reason or "",
        usage=Usage(
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            total_tokens=getattr(usage, "total_tokens", 0) or 0,
        ),
        cost=cost_of(response),
        latency_ms=latency_ms,
        model=model,
    )


def new_call_id() -> str:
    """An id for a call that came without one (litellm makes one up for most kinds already): nine letters and
    digits, which every kind accepts (Mistral's tokenizer on vLLM takes nothing else), unique within a run."""
    return uuid.uuid4().hex[:9]


def parse_arguments(raw: str | dict) -> tuple[dict[str, Any], str | None]:
    """A call's arguments as a dict, and why not (for the model to be told) when they are not a JSON object.

    Lenient where the meaning is plain: raw control characters inside strings (a newline a small model wrote
    into a command) and an object sent as a JSON string of its own (some servers encode twice)."""
    if isinstance(raw, dict):
        return raw, None
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw, strict=False)
    except json.JSONDecodeError as exc:
        reason = exc.msg.removesuffix(" at").removesuffix(":")
        return {}, f"arguments are not valid JSON: {reason} at character {exc.pos + 1} of {len(raw)}"
    if isinstance(value, str) and value.lstrip().startswith("{"):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value, strict=False)
    if not isinstance(value, dict):
        return {}, f"arguments must be a JSON object, got {type(value).__name__}"
    return value, None


def cost_of(response: Any) -> float | None:
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if cost is None and "response_cost" not in hidden:  # litellm priced it already (None: it has no price)
        try:
            cost = litellm().completion_cost(completion_response=response)
        except Exception:
            return None
    return float(cost) if cost else None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__ or getattr(current, "original_exception", None)
    return seen


def _connection_failed(exc: BaseException) -> bool:
    """Whether the chain of causes holds a failure to connect (not a reply cut short after connecting)."""
    import httpx

    return any(
        isinstance(link, httpx.ConnectError | httpx.ConnectTimeout | ConnectionRefusedError | socket.gaierror)
        for link in _chain(exc)
    )


def _retry_after(exc: BaseException) -> float | None:
    from providers.discovery import parse_retry_after

    headers = getattr(exc, "litellm_response_headers", None) or {}
    response = getattr(exc, "response", None)
    if not headers and response is not None:
        headers = getattr(response, "headers", {}) or {}
    for name in ("retry-after", "Retry-After"):
        if name in headers:
            return parse_retry_after(headers[name])
    return None


# litellm stacks its class names in front of the server's words ("litellm.ContextWindowExceededError:
# litellm.BadRequestError: OpenAIException - ..."): a person needs the words.
_LIBRARY_PREFIX = re.compile(r"^(?:(?:litellm\.)?\w+(?:Error|Exception):\s*|\w+Exception\s+-\s+)+")
_CONTEXT_LIMIT = re.compile(
    r"(?:maximum context length is|context window of|context length of|context size of|n_ctx\W+)\s*(\d[\d,]*)",
    re.IGNORECASE,
)
_CONTEXT_WORDS = ("context length", "context window", "context size", "maximum context", "too many tokens")


def first_line(text: str, limit: int = 300) -> str:
    """The gist of a library's message: its first line, without any traceback appended to it, and without the
    library's class names stacked in front of it."""
    line = (text.split("\nTraceback", 1)[0].strip().splitlines() or [""])[0]
    return _LIBRARY_PREFIX.sub("", line)[:limit]


def _context_limit(detail: str) -> int | None:
    match = _CONTEXT_LIMIT.search(detail)
    return int(match.group(1).replace(",", "")) if match else None


def translate(exc: Exception, provider: Provider) -> ProviderError:
    """A litellm exception as one of our typed errors, with a message a person can act on."""
    lib = litellm()
    where = provider.endpoint
    detail = first_line(str(getattr(exc, "message", "") or exc))
    status = getattr(exc, "status_code", None)
    if isinstance(exc, lib.AuthenticationError | lib.PermissionDeniedError):
        return AuthenticationFailed(f"{where} refused the API key: {detail}")
    if isinstance(exc, lib.RateLimitError):
        return RateLimited(f"{where} is rate limiting requests: {detail}", _retry_after(exc))
    if isinstance(exc, lib.Timeout):
        return RequestTimedOut(f"No answer from {where} within the timeout.")
    if _connection_failed(exc):
        return Unreachable(f"Cannot connect to {where}: is the server up and the URL right?")
    if isinstance(exc, lib.NotFoundError):
        return ModelNotFound(f"{where} does not know this model (or path): {detail}")
    if isinstance(exc, lib.APIConnectionError):
        return MalformedResponse(f"{where} sent an answer that could not be read: {detail}")
    if isinstance(exc, lib.ContextWindowExceededError) or (
        isinstance(exc, lib.BadRequestError) and any(words in detail.lower() for words in _CONTEXT_WORDS)
    ):
        return ContextExceeded(f"{where} refused the conversation as too long: {detail}", _context_limit(detail))
    if isinstance(exc, lib.BadRequestError):
        return BadRequest(f"{where} refused the request: {detail}")
    if status in (None, 200) or "JSON" in detail or "Expecting value" in detail:
        return MalformedResponse(f"{where} sent an answer that could not be read: {detail}")
    if isinstance(status, int) and status >= 500:
        return ServerError(f"{where} failed (HTTP {status}): {detail}", status, detail)
    return ProviderError(f"{where}: {type(exc).__name__}: {detail}")
