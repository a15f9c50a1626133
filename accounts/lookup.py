"""Finding the user a staff command names (by id, username or email), and the staff running it."""

from __future__ import annotations

from .exceptions import UserNotFound
from .models import User


def resolve_user(reference: str) -> User:
    """Find a user by id, username or email (for staff commands); ambiguity is an error."""
    reference = str(reference).strip()
    if reference.isdigit():
        user = User.objects.filter(pk=int(reference)).first()
        if user:
            return user
    matches = list(User.objects.filter(username=reference)[:2]) or list(
        User.objects.filter(email__iexact=reference)[:2]
    )
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UserNotFound(f"More than one user matches {reference!r}; use the numeric user id.")
    raise UserNotFound(f"No user matches {reference!r}.")


def staff_actor(reference: str) -> User:
    """The staff member a command is run as (``--actor``): recorded as the one who did it."""
    actor = resolve_user(reference)
    if not actor.is_staff:
        raise UserNotFound(f"{reference!r} is not a staff member.")
    return actor
