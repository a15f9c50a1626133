"""Adding, changing, refreshing and disabling enterprise connections: for the admin and the command.

Each function owns its transaction and changes nothing when the metadata cannot be used.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from .metadata import (
    Fetcher,
    IdpMetadata,
    MetadataError,
    Resolver,
    fetch_metadata,
    parse_idp_metadata,
    read_metadata_file,
)
from .models import EnterpriseConnection


class ConnectionInputError(ValueError):
    """Bad input for a connection; ``str()`` is one line for staff."""


@dataclass(frozen=True)
class MetadataSource:
    """Where metadata comes from: pasted XML, a file, or an https URL (exactly one)."""

    xml: str = ""
    path: str = ""
    url: str = ""

    @classmethod
    def from_argument(cls, value: str) -> MetadataSource:
        return cls(url=value) if value.startswith(("https://", "http://")) else cls(path=value)


def read_metadata(
    source: MetadataSource, *, fetcher: Fetcher | None = None, resolver: Resolver | None = None
) -> tuple[str, IdpMetadata]:
    """The metadata document and what it says; ``MetadataError`` (one line) when unusable."""
    if source.url:
        xml = fetch_metadata(source.url, fetcher=fetcher, resolver=resolver)
    elif source.path:
        xml = read_metadata_file(source.path)
    else:
        xml = source.xml
    return xml, parse_idp_metadata(xml)


def apply_metadata(connection: EnterpriseConnection, xml: str, parsed: IdpMetadata) -> None:
    """Copy what the metadata says onto ``connection`` (not saved)."""
    connection.metadata_xml = xml
    connection.entity_id = parsed.entity_id
    connection.sso_url = parsed.sso_url
    connection.signing_certificates = parsed.signing_certificates
    connection.metadata_refreshed_at = timezone.now()


def _clean_domains(domains: list[str]) -> str:
    cleaned = []
    for domain in domains:
        value = domain.strip().lower().lstrip("@")
        if not value or "." not in value or "/" in value or " " in value:
            raise ConnectionInputError(f"{domain!r} is not an email domain (like example.com).")
        cleaned.append(value)
    return " ".join(dict.fromkeys(cleaned))


def add_connection(
    *,
    slug: str,
    name: str,
    source: MetadataSource,
    domains: list[str] | None = None,
    trust_email: bool = False,
    fetcher: Fetcher | None = None,
    resolver: Resolver | None = None,
) -> EnterpriseConnection:
    if not slug or slugify(slug) != slug:
        raise ConnectionInputError(f"{slug!r} is not a slug (lower-case letters, digits and hyphens).")
    if not name.strip():
        raise ConnectionInputError("The connection needs a --name.")
    try:
        xml, parsed = read_metadata(source, fetcher=fetcher, resolver=resolver)
    except MetadataError as error:
        raise ConnectionInputError(str(error)) from None
    with transaction.atomic():
        if EnterpriseConnection.objects.filter(slug=slug).exists():
            raise ConnectionInputError(f"A connection named {slug!r} exists already.")
        connection = EnterpriseConnection(
            slug=slug,
            name=name.strip()[:100],
            metadata_url=source.url,
            metadata_file=source.path,
            email_domains=_clean_domains(domains or []),
            trust_email=trust_email,
        )
        apply_metadata(connection, xml, parsed)
        connection.save()
    return connection


def get_connection(slug: str) -> EnterpriseConnection:
    connection = EnterpriseConnection.objects.filter(slug=slug).first()
    if connection is None:
        raise ConnectionInputError(f"No connection named {slug!r}.")
    return connection


def refresh_connection(
    *, slug: str, fetcher: Fetcher | None = None, resolver: Resolver | None = None
) -> EnterpriseConnection:
    """Re-read the metadata from where it came from (URL or file): a rollover's second
    certificate is picked up, a removed one dropped."""
    connection = get_connection(slug)
    if not connection.metadata_url and not connection.metadata_file:
        raise ConnectionInputError(f"{slug!r} has pasted metadata only: nothing to re-read.")
    source = MetadataSource(url=connection.metadata_url, path=connection.metadata_file)
    try:
        xml, parsed = read_metadata(source, fetcher=fetcher, resolver=resolver)
    except MetadataError as error:
        raise ConnectionInputError(str(error)) from None
    with transaction.atomic():
        locked = EnterpriseConnection.objects.select_for_update().get(pk=connection.pk)
        apply_metadata(locked, xml, parsed)
        locked.save()
    return locked


def refreshable_slugs() -> list[str]:
    """Connections whose metadata came from a URL or a file (pasted XML has nowhere to re-read)."""
    return list(
        EnterpriseConnection.objects.exclude(metadata_url="", metadata_file="").values_list("slug", flat=True)
    )


def set_enabled(*, slug: str, enabled: bool) -> EnterpriseConnection:
    with transaction.atomic():
        connection = get_connection(slug)
        connection.enabled = enabled
        connection.save(update_fields=["enabled", "updated_at"])
    return connection
