"""Agent keys and connect requests: how an agent asks for tokens, and asks its user for more.

Kept apart from the token sets (``vault.models`` re-exports both, so Django and callers find them there).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.providers import provider_title


class AgentKey(models.Model):
    """A secret a user gives an agent so it can ask for provider tokens on their behalf.

    Only a SHA-256 of the key is stored (see ``vault.keyformat``); ``hint`` is its prefix and last
    four characters, enough to tell keys apart in a list.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_keys")
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=16)
    providers = models.JSONField(default=list, help_text="Connections this key may get tokens for.")
    scopes = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per connection, the only scopes it may ask for (none listed: any).",
    )
    whole_grant = models.BooleanField(
        default=False,
        help_text="May receive the whole grant even when the account granted more than the key's scopes.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint})"

    def __repr__(self) -> str:
        return f"<AgentKey {self.pk} {self.hint}>"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "active"


def _connect_request_id() -> str:
    return "cr_" + secrets.token_urlsafe(18)


class ConnectRequest(models.Model):
    """An agent's request that its user link a provider (or grant it more scopes).

    The asker is an agent key, or an OAuth application of the site's authorization server (named by
    its ``client_id``: a string, so the vault needs nothing of ``authserver``). Exactly one of the two.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"
        DECLINED = "declined", "Declined"
        EXPIRED = "expired", "Expired"

    id = models.CharField(primary_key=True, max_length=40, default=_connect_request_id, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connect_requests"
    )
    agent_key = models.ForeignKey(
        AgentKey, null=True, blank=True, on_delete=models.CASCADE, related_name="connect_requests"
    )
    client_id = models.CharField(
        max_length=255, blank=True, help_text="The OAuth application that asked, when not an agent key."
    )
    provider = models.CharField(max_length=32)
    scopes = models.JSONField(default=list, blank=True)
    reason = models.CharField(
        max_length=32, blank=True, help_text="What the agent hit: connection_required ..."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    closed_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    identity_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["agent_key", "provider", "status"]),
            models.Index(fields=["client_id", "user", "provider", "status"], name="vault_connect_client_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(agent_key__isnull=False) & models.Q(client_id=""))
                | (models.Q(agent_key__isnull=True) & ~models.Q(client_id="")),
                name="vault_connect_request_one_asker",
            )
        ]

    def __str__(self) -> str:
        return f"{provider_title(self.provider)} for {self.agent_key or self.client_id} ({self.status})"

    @property
    def current_status(self) -> str:
        """The status, counting a pending request past its expiry as expired."""
        if self.status == self.Status.PENDING and self.expires_at <= timezone.now():
            return self.Status.EXPIRED
        return self.status


class StagedRecordsMark(models.Model):
    """How far the token hand-outs staged in Redis have been moved into the activity table
    (``vault.staged_records``): the id of the last stream entry moved. One row, advanced in the
    same transaction as the rows it moved, so no entry is ever inserted twice."""

    ONLY = 1

    last_entry_id = models.CharField(max_length=40, default="0-0")

    def __str__(self) -> str:
        return f"staged hand-outs moved up to {self.last_entry_id}"
