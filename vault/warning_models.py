"""Which warning mail went out, so each thing is mailed about at most once a day.

The unique constraint is what decides between two ``vault_refresh`` runs at the same moment (two
hosts, or a slow run overlapping the next): the second insert of the same (kind, subject, day) fails
and that run sends nothing. Rows hold no secret: a kind, what it was about, whose, and the day.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class WarningSent(models.Model):
    class Kind(models.TextChoices):
        KEY_EXPIRING = "key_expiring", "Agent key expires soon"
        RECONNECT_NEEDED = "reconnect_needed", "Connection needs reconnecting"
        REFRESH_FAILING = "refresh_failing", "Renewal failing for a day"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    subject_key = models.CharField(
        max_length=64, help_text="What it was about: agent_key:<id> or token_set:<id>."
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    sent_on = models.DateField(db_index=True, help_text="The day (site time zone) it was mailed.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "warning sent"
        verbose_name_plural = "warnings sent"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject_key", "sent_on"], name="vault_warning_once_a_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.subject_key}, {self.sent_on})"
