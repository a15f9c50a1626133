"""The activity record: one row per thing that happened, never changed afterwards."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from . import kinds


class Activity(models.Model):
    """An append-only record of something that happened to a user's profile or tokens.

    The table keeps its first name (``accounts_activity``): the model moved here from ``accounts``
    without touching the rows (migrations ``accounts.0006`` and ``activity.0001``).
    """

    # No index of its own: (user, -created_at, -id) below serves every lookup by user, and one index
    # fewer makes each record's insert (one per token handed out) cheaper.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="activities",
        db_index=False,
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who did it, when not the user themself (staff).",
    )
    # Kinds are declared by the apps that record them (activity.kinds): a callable, so adding a
    # kind needs no migration.
    kind = models.CharField(max_length=32, choices=kinds.choices)
    provider = models.CharField(max_length=32, blank=True)
    uid = models.CharField(max_length=255, blank=True)
    identity_id = models.BigIntegerField(
        null=True, blank=True, help_text="Kept as a number: identities go away."
    )
    # The agent key that acted, for agents' actions: a number, not a foreign key, so this app needs
    # nothing of the vault's and the record outlives the key.
    agent_key_id = models.BigIntegerField(
        null=True, blank=True, db_index=True, help_text="The agent key that did it, for agents' actions."
    )
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # Set when the record is made, not when it is saved: a record staged in Redis (vault.staged_records)
    # keeps the moment it happened when it reaches the table.
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        db_table = "accounts_activity"
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "activities"
        # A person's list and its keyset pages ((created_at, id) cursors) read this index in order.
        indexes = [models.Index(fields=["user", "-created_at", "-id"], name="activity_user_keyset_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.created_at:%Y-%m-%d %H:%M})"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("Activity records are append-only.")
        super().save(*args, **kwargs)
