"""The one way to make a staff page read-only, for every app's admin.

It lives in ``activity`` because that app is the bottom of the import order (``accounts`` and
``vault`` import it; it imports nothing of ours), and the audit trail is its first user.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

#: What an action on a read-only admin declares: ``@admin.action(permissions=[STAFF_ACTION])``.
STAFF_ACTION = "staff_action"


class ReadOnlyAdminMixin:
    """No add, change or delete forms; actions declared with ``permissions=[STAFF_ACTION]`` still run.

    Django offers an action only if ``has_<permission>_permission(request)`` says yes, so an action
    needing "change" vanishes from an admin that denies change (that is how "Revoke selected agent
    keys" was lost). ``staff_action`` asks the model's own change permission instead: staff who may
    change these rows get the action, and no form ever edits a row by hand.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_staff_action_permission(self, request: HttpRequest) -> bool:
        # ModelAdmin's own check: the user's "change" permission on the model (not this class's no).
        return super().has_change_permission(request)  # type: ignore[misc]
