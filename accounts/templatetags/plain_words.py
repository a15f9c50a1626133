"""Template filters that put things in the words a person reads: provider titles and one time format.

Every page, mail and admin list shows times the same way ("6 Dec 2026, 21:40 UTC"), always saying
the zone, and providers by their titles ("Google"), never their backend names ("google-oauth2").
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from ..providers import provider_title as _provider_title

register = template.Library()

TIME_FORMAT = "j M Y, H:i"


def when_text(moment: datetime | None) -> str:
    """The one way a time is written for people: the site's zone, named."""
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    return f"{template.defaultfilters.date(local, TIME_FORMAT)} {local.tzname()}"


@register.filter
def provider_title(name: str) -> str:
    """``google-oauth2`` → ``Google``."""
    return _provider_title(name or "")


@register.filter
def when(moment: datetime | None) -> str:
    """A ``<time>`` element with the machine-readable instant and the one human format."""
    if moment is None:
        return ""
    return format_html('<time datetime="{}">{}</time>', moment.isoformat(), when_text(moment))
