from __future__ import annotations

from django.db import models


class ProviderKind(models.TextChoices):
    ANTHROPIC = "anthropic", "Anthropic"
    OPENAI = "openai", "OpenAI"
    GOOGLE = "google", "Google (Gemini)"
    OLLAMA = "ollama", "Ollama"
    LM_STUDIO = "lm_studio", "LM Studio"
    VLLM = "vllm", "vLLM"
    OPENROUTER = "openrouter", "OpenRouter"
    XAI = "xai", "xAI"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible endpoint"


class Wire(models.TextChoices):
    """The request format litellm speaks to a kind: what its messages and tool calls must look like."""

    OPENAI = "openai", "OpenAI chat completions"
    ANTHROPIC = "anthropic", "Anthropic messages"
    GEMINI = "gemini", "Gemini generateContent"
    OLLAMA = "ollama", "Ollama chat"


class CheckStatus(models.TextChoices):
    """The outcome of the last connection or tool-calling test."""

    UNTESTED = "untested", "Not tested"
    RUNNING = "running", "Testing…"
    OK = "ok", "OK"
    FAILED = "failed", "Failed"


class ProviderCheck(models.TextChoices):
    """The checks a person starts from the dashboard (they run on a worker)."""

    CONNECTION = "connection", "Connection test"
    TOOLS = "tools", "Tool-calling check"
