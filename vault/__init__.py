"""The token vault: encrypted token sets, refresh, revocation, and the Python API.

``vault.get_access_token(user, connection, *, scopes=(), account=None, min_ttl=60)`` returns an
``AccessToken`` or raises a ``TokenVaultError`` subclass (``vault.ConnectionRequired``, ...).
Exported lazily: app loading forbids importing models when the package is imported.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .access import AccessToken, get_access_token
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

#: Exported name -> the vault module that defines it (imported on first use, after app loading).
_EXPORTS = {
    "get_access_token": ".access",
    "AccessToken": ".access",
    "TokenVaultError": ".errors",
    "ConnectionRequired": ".errors",
    "InsufficientScope": ".errors",
    "ReauthorizationRequired": ".errors",
    "ProviderUnavailable": ".errors",
    "ProviderMisconfigured": ".errors",
    "InvalidRequest": ".errors",
    "VaultUnavailable": ".errors",
    "ScopeLimitExceeded": ".errors",
    "ScopeLimit": ".scopes",
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
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vault' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)
