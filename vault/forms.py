"""The agents page's form: which providers (and optionally scopes) a new key may use, and for how long."""

from __future__ import annotations

from django import forms

from accounts.providers import token_providers

from .agents import EXPIRY_CHOICES_DAYS


class AgentKeyForm(forms.Form):
    name = forms.CharField(label="Agent name", max_length=100, help_text="So you can tell your agents apart.")
    providers = forms.MultipleChoiceField(
        label="Providers it may use", widget=forms.CheckboxSelectMultiple, choices=()
    )
    whole_grant = forms.BooleanField(
        label="May receive the whole grant",
        required=False,
        help_text="Only matters with scope limits. Unticked, a token with more than these scopes is "
        "narrowed to them (Google) or refused (GitHub and other providers cannot narrow a token). "
        "Ticked, the agent may get everything the account granted.",
    )
    expires_in_days = forms.TypedChoiceField(
        label="Expires after",
        coerce=int,
        initial=30,
        choices=[(d, f"{d} day{'s' if d > 1 else ''}") for d in EXPIRY_CHOICES_DAYS],
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        providers = token_providers()
        self.fields["providers"].choices = [(p.name, p.title) for p in providers]
        for provider in providers:
            self.fields[f"scopes_{provider.name}"] = forms.CharField(
                label=f"Only these {provider.title} scopes (optional)",
                required=False,
                max_length=2000,
                help_text="Space-separated. Leave empty to allow any scope the account has granted.",
            )

    def scope_limits(self) -> dict[str, list[str]]:
        return {
            name: self.cleaned_data.get(f"scopes_{name}", "").split()
            for name in self.cleaned_data.get("providers", [])
            if self.cleaned_data.get(f"scopes_{name}")
        }


def initial_from_draft(draft: dict[str, list[str]]) -> dict[str, object]:
    """The form's initial values from what was posted before the "confirm it's you" detour."""
    initial: dict[str, object] = {}
    for name, values in draft.items():
        if name == "providers":
            initial[name] = values
        elif name == "whole_grant":
            initial[name] = bool(values)
        elif values:
            initial[name] = values[0]
    return initial
