"""Template filters that put things in the words a person reads: provider titles, scope
descriptions and one time format.

Every page, mail and admin list shows times the same way ("6 Dec 2026, 21:40 UTC"), always saying
the zone, and providers by their titles ("Google"), never their backend names ("google-oauth2").
Scopes are shown as what they let an agent do, with the raw name kept in a ``title`` and in small
print (``accounts.scope_words``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from ..providers import provider_title as _provider_title
from ..scope_words import scope_phrase, scope_text, short_name

register = template.Library()

TIME_FORMAT = "j M Y, H:i"


@register.filter
def when_text(moment: datetime | None) -> str:
    """The one way a time is written for people: the site's zone, named (plain text: mail, commands)."""
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    return f"{template.defaultfilters.date(local, TIME_FORMAT)} {local.tzname()}"


@register.filter
def provider_title(name: str) -> str:
    """``google-oauth2`` → ``Google``."""
    return _provider_title(name or "")


@register.filter
def provider_titles(names: Iterable[str] | None) -> str:
    """``["github", "google-oauth2"]`` → ``GitHub, Google``."""
    return ", ".join(_provider_title(name) for name in names or ())


@register.filter
def when(moment: datetime | None) -> str:
    """A ``<time>`` element with the machine-readable instant and the one human format."""
    if moment is None:
        return ""
    return format_html('<time datetime="{}">{}</time>', moment.isoformat(), when_text(moment))


@register.filter
def scope_words(scope: str) -> str:
    """One scope as what it allows, the raw name on hover (``title``) and in small print.

    A scope the table does not know is shown as its raw name: a guess would mislead.
    """
    scope = str(scope or "")
    phrase = scope_phrase(scope)
    if not phrase:
        return format_html('<code class="scope">{}</code>', scope)
    return format_html(
        '<span class="scope" title="{}">{} <small class="muted">({})</small></span>',
        scope,
        phrase,
        short_name(scope),
    )


@register.filter
def scope_list(scopes: Iterable[str] | str | None) -> str:
    """Several scopes with ``scope_words``, separated by semicolons (phrases may hold commas)."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    return format_html_join("; ", "{}", ((scope_words(scope),) for scope in scopes or ()))


@register.filter
def scopes_text(scopes: Iterable[str] | str | None) -> str:
    """Plain-text ``scope_list`` (mail): ``See your GitHub profile (read:user); …``."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    return "; ".join(scope_text(scope) for scope in scopes or ())
