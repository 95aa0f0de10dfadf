"""Keeping a conversation inside the model's context window.

Every model call goes through `fit()` first: a conversation that fits is sent as it is (no copy); one that
does not has its older tool outputs shortened (oldest first, then emptied), then older model texts and
long arguments of older calls, each cut marked as cut; the system prompt, the task and the latest step
(the last model message and the results of its calls) are never touched. A conversation that still does
not fit raises ContextExceeded with a plain sentence, for the run to fail with.

The window of a provider's model: the person's setting on the provider, else what the server states (its
/models entry, Ollama's /api/show, asked once per process and model and then remembered for a while), else
what litellm's model map knows for cloud models, else a default (8,192 tokens for local servers). A server
that refuses a request as too long teaches a smaller window (`learn()`), remembered for the process.

Tokens are estimated, not counted: the model's own tokenizer is on the server (SmolLM2, Llama and Qwen each
cut text differently), so litellm's token_counter (tiktoken's cl100k) would only be another estimate, at
~1,000x the cost. One token per three bytes of UTF-8, plus a few per message for the chat template's
markers, overestimates English (about four bytes a token) and stays near the mark for the JSON, logs and
paths tool outputs are made of; the reserve for the answer is the remaining margin.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from providers.choices import ProviderKind
from providers.errors import ContextExceeded
from providers.kinds import spec
from providers.models import Provider

DEFAULT_LOCAL_WINDOW = 8192  # what llama.cpp, LM Studio and Ollama setups in the README are told to use
DEFAULT_CLOUD_WINDOW = 128_000  # a cloud model litellm does not know: today's smallest common size
BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD = 8  # <|im_start|>role\n ... <|im_end|>\n and the like, per message
TOOL_OVERHEAD = 16  # per tool schema: the template's framing around each one
ANSWER_RESERVE = 1024  # tokens left for the answer, at most a quarter of a small window
SERVER_TTL = 600.0  # seconds a window the server stated is trusted before asking again
UNKNOWN_TTL = 60.0  # a server that said nothing (or was down) is asked again after this
KEEP_CHARS = 600  # what is kept of a shortened tool output: its head, where the gist usually is
ARGUMENT_CHARS = 200  # arguments of an older call longer than this are replaced by a note
CUT_NOTE_CHARS = 120  # room for the note that marks a cut


@dataclass(frozen=True)
class Window:
    tokens: int
    source: str  # "setting", "server", "learned", "litellm" or "default": shown to people, in logs

    def describe(self) -> str:
        return f"{self.tokens:,} tokens ({SOURCE_WORDS[self.source]})"


SOURCE_WORDS = {
    "setting": "the provider's setting",
    "server": "as the server states",
    "learned": "learned from the server refusing a longer request",
    "litellm": "litellm's model map",
    "default": "the default; set the provider's context window if the server runs with another",
}

_lock = threading.Lock()
_known: dict[tuple[int | None, str, str], tuple[Window | None, float]] = {}  # (provider, endpoint, model)
_learned: dict[tuple[int | None, str, str], int] = {}


def _key(provider: Provider, model: str) -> tuple[int | None, str, str]:
    return (provider.pk, provider.endpoint, model)


def _setting(provider: Provider, model: str) -> int | None:
    value = (provider.context_windows or {}).get(model)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _from_litellm(provider: Provider, model: str) -> int | None:
    """What litellm's (local, bundled) model map says of a cloud model; None for a model it does not know."""
    kind = spec(provider.kind)
    return None if kind.local else _litellm_window(kind.litellm_prefix + model)


@functools.lru_cache(maxsize=512)
def _litellm_window(litellm_model: str) -> int | None:
    from providers.client import litellm

    try:
        info = litellm().get_model_info(litellm_model)
    except Exception:  # litellm raises a bare Exception for a model it does not know
        return None
    value = info.get("max_input_tokens") or info.get("max_tokens")
    return int(value) if value else None


def _from_server(provider: Provider, model: str) -> int | None:
    key = _key(provider, model)
    now = time.monotonic()
    with _lock:
        cached = _known.get(key)
    if cached is not None and cached[1] > now:
        return cached[0].tokens if cached[0] is not None else None
    from providers.discovery import server_context_window

    tokens = server_context_window(provider, model, timeout=5.0)
    window = Window(tokens, "server") if tokens else None
    with _lock:
        _known[key] = (window, now + (SERVER_TTL if window else UNKNOWN_TTL))
    return tokens


def context_window(provider: Provider, model: str, *, look_up: bool = True) -> Window:
    """The context window Vigilus keeps `model`'s conversations within. `look_up=False` for callers that must
    neither wait on the network nor load litellm (the web process rendering a form): what is known without."""
    with _lock:
        learned = _learned.get(_key(provider, model))
    setting = _setting(provider, model)
    if provider.kind == ProviderKind.OLLAMA:
        # Ollama states the length the model was trained for (often 128k) but runs with its own num_ctx; Vigilus
        # sends num_ctx itself (the setting, else the default), capped at what the model can take.
        trained = _from_server(provider, model) if look_up else None
        tokens, source = (setting, "setting") if setting else (DEFAULT_LOCAL_WINDOW, "default")
        if trained and trained < tokens:
            tokens, source = trained, "server"
    elif setting:
        tokens, source = setting, "setting"
    elif look_up and (stated := _from_server(provider, model)):
        tokens, source = stated, "server"
    elif look_up and (known := _from_litellm(provider, model)):
        tokens, source = known, "litellm"
    else:
        tokens, source = (DEFAULT_LOCAL_WINDOW if spec(provider.kind).local else DEFAULT_CLOUD_WINDOW), "default"
    if learned and learned < tokens:
        return Window(learned, "learned")
    return Window(tokens, source)


def learn(provider: Provider, model: str, tokens: int) -> None:
    """The server refused a request as longer than `tokens`: keep this process's conversations below it."""
    with _lock:
        key = _key(provider, model)
        _learned[key] = min(tokens, _learned.get(key, tokens))


def forget() -> None:
    """Drop what was asked and learned (tests; a provider's endpoint changed)."""
    with _lock:
        _known.clear()
        _learned.clear()


# --- estimating ------------------------------------------------------------------------------------


def estimate_text(text: str) -> int:
    return (len(text.encode()) + BYTES_PER_TOKEN - 1) // BYTES_PER_TOKEN


def estimate_message(message: dict[str, Any]) -> int:
    """Estimated tokens of one message: its text, the names and arguments of its calls, the template's markers."""
    content = message.get("content")
    if isinstance(content, list):  # parts (text, images): the text is what counts here
        content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    tokens = MESSAGE_OVERHEAD + estimate_text(content or "")
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        arguments = function.get("arguments") or ""
        tokens += (
            MESSAGE_OVERHEAD
            + estimate_text(function.get("name") or "")
            + estimate_text(arguments if isinstance(arguments, str) else json.dumps(arguments))
        )
    return tokens


def estimate_tools(tools: list[dict[str, Any]] | None) -> int:
    """Estimated tokens the tool schemas take in the prompt (every request carries all of them)."""
    return sum(TOOL_OVERHEAD + estimate_text(json.dumps(tool, separators=(",", ":"))) for tool in tools or ())


def estimate(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    return sum(estimate_message(m) for m in messages) + estimate_tools(tools)


def answer_reserve(window: int, max_tokens: int | None = None) -> int:
    return max_tokens if max_tokens else min(ANSWER_RESERVE, window // 4)


# --- fitting ---------------------------------------------------------------------------------------


def _protected(messages: list[dict[str, Any]]) -> set[int]:
    """Indexes never shortened: system prompts, the task (the first user message) and the latest step, from the
    last model message on (or the last message, when the model has not spoken yet)."""
    keep = {i for i, m in enumerate(messages) if m.get("role") == "system"}
    first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
    if first_user is not None:
        keep.add(first_user)
    last_model = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "assistant"), None)
    keep.update(range(last_model if last_model is not None else len(messages) - 1, len(messages)))
    return keep


def _cut_text(text: str, keep: int, what: str, model: str) -> str:
    removed = len(text) - keep
    head = text[:keep].rstrip()
    note = f"[{removed:,} characters of this {what} were cut to fit {model}'s context]"
    return f"{head}\n{note}" if head else note


def _shorten_arguments(message: dict[str, Any], model: str) -> dict[str, Any] | None:
    """The message with long arguments of its calls replaced by a note (still a JSON object, as servers and
    litellm parse them), or None when none is long."""
    calls = []
    changed = False
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        arguments = function.get("arguments") or ""
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        if len(text) > ARGUMENT_CHARS:
            note = json.dumps({"cut": f"{len(text):,} characters of arguments were cut to fit {model}'s context"})
            call = {**call, "function": {**function, "arguments": note}}
            changed = True
        calls.append(call)
    return {**message, "tool_calls": calls} if changed else None


def fit(
    messages: list[dict[str, Any]],
    *,
    model: str,
    window: Window,
    tools: list[dict[str, Any]] | None = None,
    max_tokens: int | None = None,
) -> list[dict[str, Any]]:
    """The messages to send so that they, the tool schemas and the answer fit `window`: `messages` itself when
    they fit, else a copy with older parts cut and marked. Raises ContextExceeded when even that does not fit."""
    budget = window.tokens - answer_reserve(window.tokens, max_tokens) - estimate_tools(tools)
    sizes = [estimate_message(m) for m in messages]
    total = sum(sizes)
    if total <= budget:
        return messages
    fitted = list(messages)
    protected = _protected(messages)
    older = [i for i in range(len(messages)) if i not in protected]

    def replace(index: int, message: dict[str, Any]) -> bool:
        nonlocal total
        size = estimate_message(message)
        total += size - sizes[index]
        sizes[index], fitted[index] = size, message
        return total <= budget

    # Older tool outputs first: shortened to their head, then (still too long) to the note alone.
    for keep in (KEEP_CHARS, 0):
        for i in older:
            content = fitted[i].get("content")
            if fitted[i].get("role") == "tool" and isinstance(content, str) and len(content) > keep + 120:
                original = messages[i]["content"]
                if replace(i, {**fitted[i], "content": _cut_text(original, keep, "tool output", model)}):
                    return fitted
    # Then older model texts and long arguments of older calls.
    for i in older:
        message = fitted[i]
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str) and len(content) > 120:
            message = {**message, "content": _cut_text(content, 0, "answer", model)}
        message = _shorten_arguments(message, model) or message
        if message is not fitted[i] and replace(i, message):
            return fitted
    # Last, the latest step's own tool outputs (a `ps aux`, a long log): the model reads their head, marked as cut,
    # rather than the run failing on what one read printed. The largest first, each cut by what is still over.
    latest = [i for i in protected if fitted[i].get("role") == "tool" and isinstance(fitted[i].get("content"), str)]
    for i in sorted(latest, key=lambda index: -sizes[index]):
        content = fitted[i]["content"]
        keep = max(0, len(content) - (total - budget) * BYTES_PER_TOKEN - CUT_NOTE_CHARS)
        if keep < len(content) and replace(i, {**fitted[i], "content": _cut_text(content, keep, "tool output", model)}):
            return fitted
    tools_note = f"; the tool schemas alone take about {estimate_tools(tools):,}" if tools else ""
    raise ContextExceeded(
        f"the conversation no longer fits {model}'s {window.tokens:,}-token context (about {total:,} tokens "
        f"even with every tool output cut{tools_note}): give the model a larger context, or the Operator "
        "fewer tools or a smaller task"
    )
