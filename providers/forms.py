from __future__ import annotations

from django import forms

from providers.models import Provider


class ProviderForm(forms.ModelForm):
    class Meta:
        model = Provider
        fields = ["name", "kind", "base_url", "api_key", "default_model", "enabled"]
        widgets = {"default_model": forms.TextInput(attrs={"list": "model-options", "autocomplete": "off"})}
        help_texts = {
            "api_key": (
                "Stored encrypted and never shown again. Optional for Ollama, LM Studio, vLLM and compatible endpoints."
            ),
            "default_model": "Type a name, or load the endpoint's models to pick one.",
        }
