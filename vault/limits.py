"""Bounds of what a caller may ask the vault, declared once for the Python API, the agent API
(JSON and RFC 8693 form) and the OpenAPI document.

(Scope names and how many a request may carry are ``accounts.scopes``: pages use them too.)
"""

from __future__ import annotations

#: The longest ``min_ttl`` (seconds) a caller may ask for. Longer than any provider's tokens live
#: (Google: 3599 s) on purpose: such a ``min_ttl`` is answered with the token's real, shorter
#: lifetime and does not force a refresh on every call (issue 12.3).
MAX_MIN_TTL = 24 * 3600

#: The ``min_ttl`` of a caller who names none.
DEFAULT_MIN_TTL = 60

#: The largest request body the agent API reads.
MAX_BODY_BYTES = 16 * 1024

#: The longest ``login_hint`` (an email address's longest form) the RFC 8693 form takes.
MAX_LOGIN_HINT_LENGTH = 254
