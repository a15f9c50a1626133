"""Enterprise connections: one company's SAML identity provider, as staff configured it.

The entity id, SSO URL and signing certificates are derived from the IdP's metadata (pasted or
fetched), never typed by hand, so a refresh of the metadata is the one way they change.
"""

from __future__ import annotations

from django.db import models


class ConnectionQuerySet(models.QuerySet):
    def enabled(self) -> ConnectionQuerySet:
        return self.filter(enabled=True)


class EnterpriseConnection(models.Model):
    slug = models.SlugField(
        max_length=50, unique=True, help_text="Short name used in URLs (/saml/<slug>/acs/); never changes."
    )
    name = models.CharField(max_length=100, help_text="The company's name, as people see it.")
    metadata_xml = models.TextField(blank=True, help_text="The IdP's SAML metadata (pasted or fetched).")
    metadata_url = models.URLField(
        max_length=500, blank=True, help_text="https URL of the IdP's metadata; re-read by a refresh."
    )
    metadata_file = models.CharField(
        max_length=500,
        blank=True,
        help_text="File the metadata was read from by the command; re-read by a refresh.",
    )
    entity_id = models.CharField(max_length=500, blank=True, editable=False)
    sso_url = models.URLField(max_length=500, blank=True, editable=False)
    # Several during an IdP's rollover: a response signed by any of them is accepted.
    signing_certificates = models.JSONField(default=list, blank=True, editable=False)
    attr_subject = models.CharField(
        max_length=200, blank=True, help_text="Attribute holding the permanent subject; empty: the NameID."
    )
    attr_email = models.CharField(
        max_length=200,
        blank=True,
        help_text="Attribute holding the email; empty: the usual names (mail, email).",
    )
    attr_name = models.CharField(
        max_length=200, blank=True, help_text="Attribute holding the display name; empty: the usual names."
    )
    trust_email = models.BooleanField(
        default=False,
        help_text="Treat this IdP's email as verified (suggested linking relies on it). Off unless you "
        "know the IdP verifies every address it asserts.",
    )
    email_domains = models.CharField(
        max_length=500,
        blank=True,
        help_text="Space-separated work email domains that lead to this connection (example.com).",
    )
    enabled = models.BooleanField(default=True)
    allow_idp_initiated = models.BooleanField(
        default=False, help_text="Accept sign-ins started at the IdP (no request of ours to answer)."
    )
    metadata_refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["name", "slug"]
        verbose_name = "enterprise connection"

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def domains(self) -> list[str]:
        return [
            d.strip().lower().lstrip("@") for d in self.email_domains.replace(",", " ").split() if d.strip()
        ]
