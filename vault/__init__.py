"""The token vault: encrypted token sets, refresh, revocation, and the Python API.

``vault.get_access_token(user, connection, *, scopes=(), account=None, min_ttl=60)`` returns an
``AccessToken`` or raises a ``TokenVaultError`` subclass (``vault.ConnectionRequired``, ...).
Exported lazily: app loading forbids importing models when the package is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import (
        ConnectionRequired,
        InsufficientScope,
        InvalidRequest,
        ProviderMisconfigured,
        ProviderUnavailable,
        ReauthorizationRequired,
        ScopeLimitExceeded,
        TokenVaultError,
        VaultUnavailable,
    )
    from .scopes import ScopeLimit
    from .tokens import AccessToken, get_access_token

_FROM_TOKENS = {"get_access_token", "AccessToken"}
_FROM_ERRORS = {
    "TokenVaultError",
    "ConnectionRequired",
    "InsufficientScope",
    "ReauthorizationRequired",
    "ProviderUnavailable",
    "ProviderMisconfigured",
    "InvalidRequest",
    "VaultUnavailable",
    "ScopeLimitExceeded",
}

__all__ = [
    "AccessToken",
    "ConnectionRequired",
    "InsufficientScope",
    "InvalidRequest",
    "ProviderMisconfigured",
    "ProviderUnavailable",
    "ReauthorizationRequired",
    "ScopeLimit",
    "ScopeLimitExceeded",
    "TokenVaultError",
    "VaultUnavailable",
    "get_access_token",
]


def __getattr__(name: str) -> Any:
    if name in _FROM_TOKENS:
        from . import tokens

        return getattr(tokens, name)
    if name in _FROM_ERRORS:
        from . import errors

        return getattr(errors, name)
    if name == "ScopeLimit":
        from .scopes import ScopeLimit

        return ScopeLimit
    raise AttributeError(f"module 'vault' has no attribute {name!r}")
