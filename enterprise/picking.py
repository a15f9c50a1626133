"""Which enterprise connection a person means: by their work email's domain, or from a list."""

from __future__ import annotations

from .models import EnterpriseConnection


def enabled_connections() -> list[EnterpriseConnection]:
    return list(EnterpriseConnection.objects.enabled())


def connection_for_email(email: str) -> EnterpriseConnection | None:
    """The enabled connection listing the email's domain (exactly, lower-cased), if one does."""
    domain = email.strip().rpartition("@")[2].lower()
    if not domain:
        return None
    for connection in enabled_connections():
        if domain in connection.domains:
            return connection
    return None
