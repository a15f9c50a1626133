"""List a user's identities: what staff need before unlinking or merging. No tokens."""

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.exceptions import LinkingError
from accounts.identities import identities_for
from accounts.lookup import resolve_user
from accounts.providers import provider_title


class Command(BaseCommand):
    help = (
        "List a user's linked identities (id, provider, uid, account, email, verified, linked, last sign-in)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("user", help="user id, username or email")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print JSON instead of a table"
        )

    def handle(self, *args, user: str, as_json: bool = False, **options) -> None:
        try:
            target = resolve_user(user)
        except LinkingError as error:
            raise CommandError(str(error)) from None
        rows = []
        for identity in identities_for(target):
            details = getattr(identity, "details", None)
            rows.append(
                {
                    "id": identity.pk,
                    "provider": identity.provider,
                    "uid": identity.uid,
                    "account": details.account_name if details else "",
                    "email": details.email if details else "",
                    "email_verified": bool(details and details.email_verified),
                    "linked_at": details.linked_at.isoformat() if details else identity.created.isoformat(),
                    "last_login_at": details.last_login_at.isoformat()
                    if details and details.last_login_at
                    else None,
                }
            )
        if as_json:
            self.stdout.write(json.dumps({"user": target.pk, "identities": rows}, indent=2))
            return
        self.stdout.write(
            f"User {target.pk} ({target.username}): {len(rows)} identit{'y' if len(rows) == 1 else 'ies'}"
        )
        for row in rows:
            self.stdout.write(
                f"  {row['id']:>6}  {provider_title(row['provider']):<14} {row['uid']:<24} "
                f"{row['account']:<20} "
                f"{row['email'] or '-'} {'(verified)' if row['email_verified'] else '(unverified)'}"
            )
