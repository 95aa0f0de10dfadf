"""The registry of provider kinds: how litellm names each, where it lives by default, how to list its models.

A table, not a class per kind: every kind differs only in data. Endpoints are given as a person
finds them documented: with /v1 for the OpenAI-style kinds, the bare host for Anthropic, Gemini
and Ollama (litellm appends /v1/messages, /models/<m>:generateContent and /api/chat).
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.choices import ProviderKind, Wire


@dataclass(frozen=True)
class KindSpec:
    litellm_prefix: str  # model name prefix that selects litellm's provider, e.g. "anthropic/"
    default_base_url: str  # "" when the person must give one
    needs_api_key: bool  # cloud kinds refuse to be saved without a key
    models_api: str  # which listing endpoint: "openai" (/models), "ollama" (/api/tags), "anthropic", "gemini"
    completion_path: str = ""  # appended to the endpoint for litellm's api_base (Gemini's API version)
    local: bool = False  # a server on the person's own hardware: small contexts, nothing in litellm's model map

    @property
    def wire(self) -> Wire:
        """The request format litellm speaks to this kind (the listing API names it too)."""
        return Wire(self.models_api)


KINDS: dict[str, KindSpec] = {
    ProviderKind.ANTHROPIC: KindSpec("anthropic/", "https://api.anthropic.com", True, "anthropic"),
    ProviderKind.OPENAI: KindSpec("openai/", "https://api.openai.com/v1", True, "openai"),
    ProviderKind.GOOGLE: KindSpec(
        "gemini/", "https://generativelanguage.googleapis.com", True, "gemini", completion_path="/v1beta"
    ),
    ProviderKind.OLLAMA: KindSpec("ollama_chat/", "http://localhost:11434", False, "ollama", local=True),
    ProviderKind.LM_STUDIO: KindSpec("lm_studio/", "http://localhost:1234/v1", False, "openai", local=True),
    ProviderKind.VLLM: KindSpec("hosted_vllm/", "http://localhost:8000/v1", False, "openai", local=True),
    ProviderKind.OPENROUTER: KindSpec("openrouter/", "https://openrouter.ai/api/v1", True, "openai"),
    ProviderKind.XAI: KindSpec("xai/", "https://api.x.ai/v1", True, "openai"),
    # Any server speaking OpenAI's chat-completions API: litellm's openai provider with api_base.
    ProviderKind.OPENAI_COMPATIBLE: KindSpec("openai/", "", False, "openai", local=True),
}


def spec(kind: str) -> KindSpec:
    return KINDS[ProviderKind(kind)]
