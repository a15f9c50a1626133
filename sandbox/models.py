"""What the sandbox providers remember: grants, one-time codes, token hashes and per-provider state.

Tokens are stored only as sha256 hashes (the same rule the rest of the site follows), so a copy of
the development database never hands out a working sandbox token either.
"""

from __future__ import annotations

from django.db import models

PROVIDER_CHOICES = [("google", "Google"), ("github", "GitHub")]
FAILURE_MODE_CHOICES = [
    ("normal", "Normal"),
    ("invalid_grant", "Refresh answers invalid_grant"),
    ("server_error", "Token endpoint answers 503"),
    ("slow", "Token endpoint is slow"),
    ("rate_limited", "Token endpoint answers 429"),
]


class Grant(models.Model):
    """One user's consent to one client at one provider: revoking any of its tokens revokes it all."""

    provider = models.CharField(max_length=16, choices=PROVIDER_CHOICES)
    client_id = models.CharField(max_length=200)
    subject = models.CharField(max_length=64, help_text="Google sub or GitHub id, from the email.")
    email = models.CharField(max_length=254)
    name = models.CharField(max_length=200, blank=True)
    email_verified = models.BooleanField(default=True)
    email_public = models.BooleanField(default=False, help_text="GitHub: email shown on the public profile.")
    scopes = models.TextField(blank=True, help_text="Every scope granted so far, space-separated.")
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["provider", "client_id", "subject"], name="sandbox_grant_lookup")]

    def __str__(self) -> str:
        state = "revoked" if self.revoked else "active"
        return f"{self.provider} grant {self.pk} for {self.email} ({state})"

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class AuthorizationCode(models.Model):
    """A one-time authorization code (10 minutes), with what the token request must prove."""

    code_hash = models.CharField(max_length=64, unique=True)
    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="codes")
    redirect_uri = models.TextField()
    scopes = models.TextField(blank=True, help_text="Scopes the tokens issued for this code carry.")
    code_challenge = models.CharField(max_length=128, blank=True)
    code_challenge_method = models.CharField(max_length=8, blank=True)
    nonce = models.CharField(max_length=255, blank=True)
    issue_refresh_token = models.BooleanField(default=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"code {self.pk} for grant {self.grant_id}"


class AccessToken(models.Model):
    """An issued access token (hash only); alive until it expires or its grant is revoked."""

    token_hash = models.CharField(max_length=64, unique=True)
    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="access_tokens")
    scopes = models.TextField(blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"access token {self.pk} for grant {self.grant_id}"


class RefreshToken(models.Model):
    """An issued refresh token (hash only). GitHub's die on first use (``rotated_at``); Google's don't."""

    token_hash = models.CharField(max_length=64, unique=True)
    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="refresh_tokens")
    scopes = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"refresh token {self.pk} for grant {self.grant_id}"


class ProviderState(models.Model):
    """Per-provider switches and counters, in the database so every process sees the same."""

    provider = models.CharField(max_length=16, choices=PROVIDER_CHOICES, primary_key=True)
    failure_mode = models.CharField(max_length=16, choices=FAILURE_MODE_CHOICES, default="normal")
    refresh_requests = models.PositiveIntegerField(default=0)
    refresh_successes = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.provider}: {self.failure_mode}"
