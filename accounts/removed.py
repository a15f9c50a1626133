"""A stand-in backend for a provider that was removed from the settings (issue 20.1).

social-auth's disconnect pipeline needs a backend; a provider no longer in
``AUTHENTICATION_BACKENDS`` has none, so removing its identities used to fail ("backend missing").
This stand-in carries only the name: it runs the same disconnect pipeline (last-method rule, the
vault's revocation step, deletion, activity), and never talks to any provider.
"""

from __future__ import annotations

from typing import Any

from social_core.backends.base import BaseAuth


class RemovedProvider(BaseAuth):
    """The name of a provider that is not configured any more, for the disconnect pipeline only."""

    name = "removed-provider"
    #: Read by the vault: there is nothing to revoke at, the tokens are erased here.
    removed = True

    def __init__(self, strategy: Any, *, name: str) -> None:
        super().__init__(strategy)
        self.name = name

    def auth_url(self) -> str:  # pragma: no cover - never started
        raise NotImplementedError("a removed provider cannot be signed in with")

    def auth_complete(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never started
        raise NotImplementedError("a removed provider cannot be signed in with")
