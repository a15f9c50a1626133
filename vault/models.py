"""Token sets: one identity's OAuth tokens, encrypted, with their expiry, scopes and status.

A token set whose identity is gone (disconnected, its user deleted) is kept, detached, until its
tokens are revoked at the provider: ``identity`` is then NULL and ``status`` is ``revoke_pending``.
Its ciphertexts stay valid because they are bound to this row and to ``owner_id``/``provider``/
``uid`` stored here, not to the identity row. No field holds a token in plaintext, and neither
``__str__`` nor ``repr`` shows any token field.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import F
from django.utils import timezone
from social_django.models import UserSocialAuth

from accounts.providers import provider_title

from . import crypto
from .keys import KeyRing, get_keyring
from .querysets import TokenSetQuerySet

if TYPE_CHECKING:
    from .responses import TokenResponse

logger = logging.getLogger(__name__)


class TokenSet(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RECONNECT_REQUIRED = "reconnect_required", "Reconnect required"
        REVOKE_PENDING = "revoke_pending", "Revocation pending"
        #: A stored value did not decrypt or is impossible (blank...): never handed out or retried
        #: until the person reconnects (or staff clear it after fixing the keys).
        VAULT_FAULT = "vault_fault", "Vault fault: reconnect"

    identity = models.OneToOneField(
        UserSocialAuth,
        null=True,
        blank=True,
        # Not CASCADE: tokens of a removed identity must be revoked at the provider first.
        on_delete=models.SET_NULL,
        related_name="token_set",
    )
    owner_id = models.BigIntegerField(
        db_index=True,
        help_text="User id the ciphertexts are bound to (the identity's user when they were written).",
    )
    provider = models.CharField(max_length=32)
    uid = models.CharField(max_length=255)
    key_name = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="Vault key of the values."
    )
    access_token_encrypted = models.TextField(blank=True)
    refresh_token_encrypted = models.TextField(blank=True)
    token_type = models.CharField(max_length=40, blank=True)
    scopes = models.JSONField(default=list, blank=True, help_text="Scopes the provider said it granted.")
    scopes_reported = models.BooleanField(
        default=True,
        help_text="False when the provider listed no scopes (GitHub Apps) and the requested ones are shown.",
    )
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    expiry_assumed = models.BooleanField(
        default=False,
        help_text="The provider gave no expires_in: expires_at is VAULT_ASSUMED_TOKEN_LIFETIME after issue.",
    )
    issued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the provider issued the current access token."
    )
    refreshed_at = models.DateTimeField(null=True, blank=True)
    # No index of its own: the (status, expires_at) index below serves every lookup by status, and a
    # second one only gave the planner a worse choice for the refresh selection.
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.ACTIVE)
    last_error_code = models.CharField(max_length=64, blank=True)
    fault_keyring = models.CharField(
        max_length=16,
        blank=True,
        help_text="Fingerprint of the vault keys under which a value did not decrypt (vault_fault): "
        "the row is tried again once the keys differ.",
    )
    last_error_at = models.DateTimeField(null=True, blank=True)
    retry_not_before = models.DateTimeField(
        null=True, blank=True, help_text="After a provider outage, no refresh is tried before this."
    )
    revoke_attempts = models.PositiveIntegerField(default=0)
    detached_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=0, help_text="Bumped on every token write.")
    lease_id = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TokenSetQuerySet.as_manager()

    class Meta:
        verbose_name = "stored tokens"
        verbose_name_plural = "stored tokens"
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return f"{provider_title(self.provider)} tokens #{self.pk} ({self.get_status_display()})"

    def __repr__(self) -> str:
        return f"<TokenSet #{self.pk} {self.provider} {self.status}>"

    def binding(self, field: str) -> crypto.Binding:
        if self.pk is None:
            raise ValueError(
                "A token set is saved before its values are encrypted (they are bound to its id)."
            )
        return crypto.Binding(
            row_id=self.pk, field=field, owner_id=self.owner_id, provider=self.provider, uid=self.uid
        )

    def set_tokens(
        self, *, access_token: str, refresh_token: str | None, keyring: KeyRing | None = None
    ) -> None:
        """Encrypt both values into this saved row under the first key, bound to its current owner.

        Callers that keep a stored refresh token read it first and pass it back, so both values
        always name the same key and owner.
        """
        keyring = keyring or get_keyring()
        self.access_token_encrypted = crypto.encrypt(
            access_token, binding=self.binding("access_token"), keyring=keyring
        )
        self.refresh_token_encrypted = (
            crypto.encrypt(refresh_token, binding=self.binding("refresh_token"), keyring=keyring)
            if refresh_token
            else ""
        )
        self.key_name = keyring.primary

    def read_access_token(self, *, keyring: KeyRing | None = None) -> str:
        if not self.access_token_encrypted:
            return ""
        return crypto.decrypt(
            self.access_token_encrypted, binding=self.binding("access_token"), keyring=keyring
        )

    def read_refresh_token(self, *, keyring: KeyRing | None = None) -> str:
        if not self.refresh_token_encrypted:
            return ""
        return crypto.decrypt(
            self.refresh_token_encrypted, binding=self.binding("refresh_token"), keyring=keyring
        )

    def stored_key_names(self) -> set[str]:
        """Key names the stored values name (normally one: ``key_name``)."""
        names = {
            crypto.key_name_of(value)
            for value in (self.access_token_encrypted, self.refresh_token_encrypted)
            if value
        }
        return {name or "?" for name in names}

    @property
    def has_refresh_token(self) -> bool:
        return bool(self.refresh_token_encrypted)

    @property
    def is_detached(self) -> bool:
        return self.identity_id is None

    def _clear_lease(self) -> None:
        self.lease_id, self.lease_expires_at = "", None

    def mark_active(
        self,
        *,
        response: TokenResponse,
        refresh_token: str | None,
        owner_id: int,
        scopes: list[str] | None,
        scopes_reported: bool = True,
        refreshed: bool = False,
        keyring: KeyRing | None = None,
    ) -> None:
        """The one write of new tokens (a sign-in's capture, a refresh): encrypted for ``owner_id``,
        expiry and type from the parsed ``response``, every error, pause, fault and lease cleared.

        ``scopes`` None keeps the stored grant (a refresh that named no scopes, RFC 6749 5.1);
        ``refresh_token`` is the new one or the stored one the caller read back.
        """
        self.owner_id = owner_id  # (re)bound to the identity's current owner
        self.set_tokens(access_token=response.access_token, refresh_token=refresh_token, keyring=keyring)
        # A sign-in without a type is a bearer token; a refresh without one keeps the type it had.
        self.token_type = response.token_type or (self.token_type if refreshed else "") or "Bearer"
        if scopes is not None:
            self.scopes, self.scopes_reported = scopes, scopes_reported
        self.expires_at, self.expiry_assumed = response.expires_at, response.expiry_assumed
        self.issued_at = response.received_at
        if refreshed:
            self.refreshed_at = timezone.now()
        self.status = self.Status.ACTIVE
        self.fault_keyring = ""
        self.last_error_code, self.last_error_at = "", None
        self.retry_not_before = None
        self._clear_lease()
        self.version += 1
        self.save()

    def rebind(self, *, owner_id: int, access_token: str, refresh_token: str | None) -> None:
        """Re-encrypt the same tokens bound to ``owner_id`` (the identity moved to another user)."""
        self.owner_id = owner_id
        self.set_tokens(access_token=access_token, refresh_token=refresh_token)
        self.version += 1
        self.save()

    def mark_reconnect_required(self, *, code: str) -> None:
        """The provider refused to renew (or nothing can): later calls fail fast from the status."""
        self.status = self.Status.RECONNECT_REQUIRED
        self.last_error_code, self.last_error_at = code[:64], timezone.now()
        self._clear_lease()
        self.version += 1
        self.save()

    def note_refresh_error(self, *, code: str, retry_after: int | None = None) -> None:
        """A refresh failed without changing what the tokens are: remember why, and pause further
        refreshes ``retry_after`` seconds (an outage, rejected client credentials)."""
        now = timezone.now()
        self.last_error_code, self.last_error_at = code[:64], now
        if retry_after is not None:
            self.retry_not_before = now + timedelta(seconds=retry_after)
        self._clear_lease()
        self.save()

    def flag_vault_fault(self, *, code: str, fingerprint: str = "") -> bool:
        """Mark the set ``vault_fault`` (staff see it in the admin and ``vault_status``, the person
        sees "Reconnect"); later requests fail fast from the status. Conditional on the version
        read, so tokens a concurrent refresh or reconnect just wrote are not flagged; a set already
        flagged under the same keys is left alone. ``fingerprint`` names the keys a value did not
        decrypt under: the set is tried once more when they change. Returns whether it flagged."""
        flagged = (
            TokenSet.objects.filter(pk=self.pk, version=self.version)
            .exclude(status=self.Status.VAULT_FAULT, fault_keyring=fingerprint)
            .update(
                status=self.Status.VAULT_FAULT,
                last_error_code=code[:64],
                last_error_at=timezone.now(),
                fault_keyring=fingerprint,
                version=F("version") + 1,
            )
        )
        if flagged:
            self.status, self.fault_keyring, self.last_error_code = self.Status.VAULT_FAULT, fingerprint, code
            self.version += 1
            logger.error(
                "Token set %s (%s) flagged vault_fault (%s): not handed out or refreshed until reconnected%s",
                self.pk,
                self.provider,
                code,
                " or until the vault keys change" if fingerprint else "",
            )
        return bool(flagged)

    def clear_vault_fault(self) -> bool:
        """The set decrypts under the current keys again: back to active (conditional, like the flag)."""
        cleared = TokenSet.objects.filter(
            pk=self.pk, version=self.version, status=self.Status.VAULT_FAULT
        ).update(
            status=self.Status.ACTIVE,
            last_error_code="",
            last_error_at=None,
            fault_keyring="",
            version=F("version") + 1,
        )
        if cleared:
            self.status, self.fault_keyring = self.Status.ACTIVE, ""
            self.version += 1
            logger.info("Token set %s decrypts under the current vault keys again: fault cleared", self.pk)
        return bool(cleared)

    def detach_for_revocation(self) -> None:
        """Keep the tokens, without their identity, until they are revoked at the provider."""
        self.identity = None
        self.status = self.Status.REVOKE_PENDING
        self.detached_at = timezone.now()
        self._clear_lease()
        self.retry_not_before = None
        self.revoke_attempts = 0
        self.version += 1
        self.save()

    @classmethod
    def create_detached(cls, *, owner_id: int, provider: str, uid: str, response: TokenResponse) -> TokenSet:
        """A new set waiting for revocation, holding tokens no identity keeps (a refused flow's, a
        refresh's whose identity went away meanwhile, a merged-away profile's plaintext ones).
        Its expiry is the provider's own or none: a guessed one could let the revocation be skipped."""
        orphan = cls.objects.create(
            identity=None,
            owner_id=owner_id,
            provider=provider,
            uid=str(uid or "")[:255],
            status=cls.Status.REVOKE_PENDING,
            detached_at=timezone.now(),
            token_type=response.token_type,
        )
        orphan.set_tokens(access_token=response.access_token, refresh_token=response.refresh_token)
        orphan.expires_at = response.expires_at if not response.expiry_assumed else None
        orphan.save()
        return orphan


# Agent keys and connect requests live in their own module; Django finds them through this one.
from .agent_models import AgentKey, ConnectRequest, StagedRecordsMark, _connect_request_id  # noqa: E402 (old migrations name the last)
from .warning_models import WarningSent  # noqa: E402,F401 (found by Django through this module)

__all__ = ["AgentKey", "ConnectRequest", "StagedRecordsMark", "TokenSet", "_connect_request_id"]
