"""The activity kinds that the vault records (registered with ``activity.kinds`` in ``ready()``)."""

from django.db import models


class VaultKind(models.TextChoices):
    TOKEN_ISSUED = "token_issued", "Token handed out"
    TOKEN_REFRESHED = "token_refreshed", "Token refreshed"
    REFRESH_FAILED = "refresh_failed", "Token refresh failed"
    REVOKED = "revoked", "Tokens revoked at the provider"
    REVOKE_FAILED = "revoke_failed", "Revocation at the provider failed"
    AGENT_KEY_CREATED = "agent_key_created", "Agent key created"
    AGENT_KEY_REVOKED = "agent_key_revoked", "Agent key revoked"
    AGENT_KEY_RENAMED = "agent_key_renamed", "Agent key renamed"
    CONNECT_REQUEST = "connect_request", "Agent connect request"
    SCOPES_NARROWED = "scopes_narrowed", "Access narrowed"
