"""System checks: a misconfigured provider is reported by `manage.py check`, not at first sign-in."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def sandbox_not_in_production(app_configs, **kwargs):
    if getattr(settings, "SANDBOX_PROVIDERS", False) and not settings.DEBUG:
        return [
            Error(
                "SANDBOX_PROVIDERS is on with DEBUG off.",
                hint="Turn SANDBOX_PROVIDERS off in production.",
                id="accounts.E001",
            )
        ]
    return []


@register()
def provider_secrets_present(app_configs, **kwargs):
    errors = []
    pairs = [
        ("SOCIAL_AUTH_GOOGLE_OAUTH2_KEY", "SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET"),
        ("SOCIAL_AUTH_GITHUB_KEY", "SOCIAL_AUTH_GITHUB_SECRET"),
        ("SOCIAL_AUTH_OIDC_KEY", "SOCIAL_AUTH_OIDC_SECRET"),
    ]
    for key_name, secret_name in pairs:
        if getattr(settings, key_name, "") and not getattr(settings, secret_name, ""):
            errors.append(
                Error(
                    f"{key_name} is set but {secret_name} is not.",
                    hint=f"Set {secret_name} from the provider's app settings.",
                    id="accounts.E002",
                )
            )
    return errors
