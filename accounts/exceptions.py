"""What the linking services refuse, each with a ``code``; ``str()`` is a message for the person.

Views show the message, commands turn it into a ``CommandError``, the admin into a message.
"""

from __future__ import annotations


class LinkingError(Exception):
    """A linking operation was refused; ``str()`` is a message to show the person."""

    code = "linking_error"


class IdentityNotFound(LinkingError):
    code = "identity_not_found"


class LastSignInMethod(LinkingError):
    code = "last_sign_in_method"


class SudoRequired(LinkingError):
    """Linking another account needs a recent sign-in (sudo mode)."""

    code = "sudo_required"


class UserNotFound(LinkingError):
    code = "user_not_found"
