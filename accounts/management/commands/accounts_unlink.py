"""Remove one identity from a user, with the same rules and records as the connections page."""

from django.core.management.base import BaseCommand, CommandError

from accounts.exceptions import LinkingError
from accounts.lookup import resolve_user, staff_actor
from accounts.providers import provider_title
from accounts.unlinking import unlink_identity


class Command(BaseCommand):
    help = (
        "Unlink one identity (by its id) from a user; revokes its tokens. "
        "Refuses to remove the last sign-in method of an active profile; an identity left on a "
        "merged-away or deactivated profile can always be removed (so it can be linked again)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("user", help="user id, username or email")
        parser.add_argument("identity_id", type=int, help="the identity's id (see accounts_identities)")
        parser.add_argument(
            "--dry-run", action="store_true", help="show what would be removed; change nothing"
        )
        parser.add_argument(
            "--actor", help="your staff username: recorded as the one who unlinked (as in accounts_merge)"
        )

    def handle(self, *args, user: str, identity_id: int, dry_run: bool, actor: str | None, **options) -> None:
        try:
            target = resolve_user(user)
            actor_user = staff_actor(actor) if actor else None
            # staff_repair: also an identity left on a merged-away profile (issue 20.3).
            result = unlink_identity(
                user=target, identity_id=identity_id, actor=actor_user, dry_run=dry_run, staff_repair=True
            )
        except LinkingError as error:
            raise CommandError(str(error)) from None
        verb = "Would unlink" if dry_run else "Unlinked"
        self.stdout.write(
            f"{verb} {provider_title(result.provider)} identity {identity_id} "
            f"({result.account_name or result.uid}) from user {target.pk}."
        )
