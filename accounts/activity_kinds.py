"""The activity kinds that accounts records (registered with ``activity.kinds`` in ``ready()``)."""

from django.db import models


class AccountKind(models.TextChoices):
    SIGNED_IN = "signed_in", "Signed in"
    SIGNED_OUT = "signed_out", "Signed out"
    LINKED = "linked", "Linked an account"
    UNLINKED = "unlinked", "Removed an account"
    LINK_REFUSED = "link_refused", "Refused a sign-in or link"
    REAUTHENTICATED = "reauthenticated", "Confirmed identity"
    MERGED = "merged", "Merged profiles"
    SIGN_IN_THROTTLED = "sign_in_throttled", "Refused a staff sign-in (too many failed attempts)"
    SESSION_ENDED = "session_ended", "Signed out another browser"
    OTHER_SESSIONS_ENDED = "other_sessions_ended", "Signed out everywhere else"
