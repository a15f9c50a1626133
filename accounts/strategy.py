"""social-auth's Django strategy, with every absolute URL built from ``settings.SITE_URL``.

social-auth builds ``redirect_uri`` (and any other absolute URL it hands a provider) from the
request's ``Host`` header. Any host in ``ALLOWED_HOSTS`` would then become the place a provider
sends codes to; the site's one registered address is ``SITE_URL`` (wired by
``SOCIAL_AUTH_STRATEGY`` in settings).
"""

from __future__ import annotations

from django.conf import settings
from social_core.utils import build_absolute_uri
from social_django.strategy import DjangoStrategy


def site_url(path: str = "/") -> str:
    """``path`` on the site's configured address (``SITE_URL``), never on the request's host."""
    return build_absolute_uri(str(settings.SITE_URL).rstrip("/") + "/", path)


class SiteUrlStrategy(DjangoStrategy):
    def build_absolute_uri(self, path: str | None = None) -> str:
        return site_url(path or "/")
