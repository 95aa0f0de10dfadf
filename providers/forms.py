from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError

from providers.models import Provider, context_windows_problem

_WINDOW_LINE = re.compile(r"^(?P<model>\S+?)\s*(?:=|\s)\s*(?P<tokens>[\d_]+)$")  # not ":", Ollama names have it


def parse_context_windows(text: str) -> dict[str, int]:
    """`model=tokens` entries, one a line (or comma-separated), as {model: tokens}; ValidationError naming the
    entry a person got wrong."""
    windows: dict[str, int] = {}
    for entry in (part.strip() for line in text.splitlines() for part in line.split(",") if part.strip()):
        match = _WINDOW_LINE.match(entry)
        if match is None:
            raise ValidationError(f"Write {entry!r} as model=tokens, e.g. llama3.1:8b=16384.")
        windows[match["model"]] = int(match["tokens"].replace("_", "").replace(",", ""))
    problem = context_windows_problem(windows)
    if problem:
        raise ValidationError(problem)
    return windows


class ContextWindowsField(forms.CharField):
    """{model: tokens} edited as `model=tokens` lines."""

    widget = forms.Textarea(attrs={"rows": 2, "placeholder": "llama3.1:8b=16384"})

    def prepare_value(self, value: object) -> object:
        if isinstance(value, dict):
            return "\n".join(f"{model}={tokens}" for model, tokens in value.items())
        return value

    def to_python(self, value: object) -> dict[str, int]:
        return parse_context_windows(str(value or ""))


class ProviderForm(forms.ModelForm):
    context_windows = ContextWindowsField(
        required=False,
        label="Context windows",
        help_text="Tokens each model can take in, one model=tokens a line. Needed where the server does not say "
        "(llama.cpp, LM Studio, compatible endpoints; Vigilus assumes 8192) or runs with less than it says; for "
        "Ollama it is also the num_ctx Vigilus asks for.",
    )

    class Meta:
        model = Provider
        fields = ["name", "kind", "base_url", "api_key", "default_model", "context_windows", "enabled"]
        widgets = {"default_model": forms.TextInput(attrs={"list": "model-options", "autocomplete": "off"})}
        help_texts = {
            "api_key": (
                "Stored encrypted and never shown again. Optional for Ollama, LM Studio, vLLM and compatible endpoints."
            ),
            "default_model": "Type a name, or load the endpoint's models to pick one.",
        }

    def full_clean(self) -> None:
        """A key typed into a form that comes back with errors is not shown again (secrets never are): the box
        says to type it again."""
        super().full_clean()
        if self.is_bound and self._errors and self.data.get("api_key"):
            self.fields["api_key"].widget.attrs["placeholder"] = "type the key again"
            # The bound field (made while cleaning) is what the page renders.
            self["api_key"].help_text = "Not saved yet: type the API key again (a key is never sent back to the page)."
