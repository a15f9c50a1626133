"""What the site adds to django-oauth-toolkit's applications: their policy, and people's consent.

The toolkit's own models (``oauth2_provider.Application``, grants, tokens) are used as they are; a
row here sits next to an application (one to one) or records what one person granted one
application. No secret is stored here.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from oauth2_provider.settings import oauth2_settings


class ApplicationPolicy(models.Model):
    """What staff decided about an application: what it may ask for, how it is shown, what it serves.

    ``resource`` is set for a resource server (an MCP server): the audience URI it serves. Tokens
    issued for that audience may be introspected and exchanged by it.
    """

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="policy"
    )
    resource = models.URLField(
        max_length=255,
        blank=True,
        db_index=True,
        help_text="For a resource server: the audience URI it serves.",
    )
    connections = models.JSONField(
        default=list, blank=True, help_text="Connections it may get tokens for (none listed: any)."
    )
    provider_scopes = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per connection, the only provider scopes it may get, e.g. {"github": ["read:user"]}.',
    )
    logo_url = models.URLField(max_length=500, blank=True)

    class Meta:
        verbose_name = "application policy"
        verbose_name_plural = "application policies"

    def __str__(self) -> str:
        return f"Policy of {self.application}"


class Consent(models.Model):
    """What one person granted one application: its scopes, and per connection the provider scopes.

    ``provider_scopes`` maps a connection to the provider scopes consented (an empty list: what the
    linked account granted, never more). Asked again when an application asks for more.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="app_consents")
    application = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="consents"
    )
    scopes = models.JSONField(default=list)
    provider_scopes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_exchange_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "application"], name="authserver_one_consent_per_app")
        ]

    def __str__(self) -> str:
        return f"{self.application} for user {self.user_id}"

    @property
    def connections(self) -> list[str]:
        return sorted(scope.removeprefix("vault:") for scope in self.scopes if scope.startswith("vault:"))
