"""The one scope grammar of the site: what a scope name is, how a list of them is read, and how many.

RFC 6749 section 3.3: ``scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`` (printable ASCII without
space, ``"`` or ``\\``). The agent API, the connect page, the "grant more access" offer and agent
keys all use these; when they disagreed, a connect request the API accepted could never complete
because the page silently dropped its scope (issue 13).

``accounts`` owns it because the pages (begin, the connections page) live here and ``accounts``
never imports ``vault``; ``vault.scopes`` re-uses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: The longest scope name accepted (Google's longest URL scopes are well under it).
MAX_SCOPE_LENGTH = 200
#: The most scope names one request, connect request, flow or key limit may name.
MAX_SCOPES = 50

_SCOPE_TOKEN = re.compile(rf"[\x21\x23-\x5b\x5d-\x7e]{{1,{MAX_SCOPE_LENGTH}}}")
#: A ``scope`` parameter's separators: RFC 6749's space, and GitHub's comma.
_SEPARATORS = re.compile(r"[\s,]+")

#: What a person is told when a name is refused.
SCOPE_NAME_RULE = "printable ASCII characters without spaces, quotes or backslashes"


def is_scope_token(value: object) -> bool:
    """A well-formed scope name (RFC 6749 ``scope-token``, at most ``MAX_SCOPE_LENGTH`` long)."""
    return isinstance(value, str) and _SCOPE_TOKEN.fullmatch(value) is not None


def split_scopes(values: Iterable[object] | str | None) -> list[str]:
    """Scope names from a ``scope`` parameter or a list of them, in order, without repeats.

    Each value is split on spaces and commas (GitHub comma-separates), so ``"a b"`` and
    ``["a", "b"]`` read alike. Nothing is checked here: see ``is_scope_token``.
    """
    if values is None:
        return []
    items = [values] if isinstance(values, str) else values
    found: list[str] = []
    for item in items:
        for scope in _SEPARATORS.split(str(item)):
            if scope and scope not in found:
                found.append(scope)
    return found


def clean_scopes(values: Iterable[object] | str | None) -> list[str]:
    """The well-formed scope names among ``values`` (at most ``MAX_SCOPES``): what a page may pass
    on to a provider from a query string or a form, where a bad name is dropped, not an error."""
    return [scope for scope in split_scopes(values) if is_scope_token(scope)][:MAX_SCOPES]
