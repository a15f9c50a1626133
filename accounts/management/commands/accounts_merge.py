"""Merge one profile into another as staff: shows the plan, asks, then does it in one transaction."""

import sys

from django.core.management.base import BaseCommand, CommandError

from accounts import merging
from accounts.exceptions import LinkingError
from accounts.lookup import resolve_user, staff_actor


class Command(BaseCommand):
    help = (
        "Merge profile FROM into profile INTO: all of FROM's identities move with their stored tokens, its "
        "agent keys are revoked and it is kept, inactive, pointing at INTO. Shows the plan and asks first."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("into", help="the profile that stays (user id, username or email)")
        parser.add_argument(
            "source", metavar="from", help="the profile merged away (user id, username or email)"
        )
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--dry-run", action="store_true", help="show what would happen; change nothing")
        parser.add_argument(
            "--actor", required=True, help="your staff username: recorded as the one who merged"
        )

    def handle(self, *args, into: str, source: str, yes: bool, dry_run: bool, actor: str, **options):
        try:
            into_user = resolve_user(into)
            source_user = resolve_user(source)
            actor_user = staff_actor(actor)
            plan = merging.plan_merge(into=into_user, source=source_user)
        except (LinkingError, merging.MergeError) as error:
            raise CommandError(str(error)) from None
        for line in plan.describe():
            self.stdout.write(line)
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")
            return
        if not yes:
            # Cron or a pipe cannot answer: say so in one line instead of an EOFError traceback.
            if sys.stdin is None or not sys.stdin.isatty():
                raise CommandError("Not merged: no terminal to ask for confirmation; run again with --yes.")
            answer = input("Merge now? Type 'yes' to continue: ")
            if answer.strip().lower() != "yes":
                raise CommandError("Not merged: confirmation was not given.")
        try:
            done = merging.merge_profiles(
                into=into_user, source=source_user, move_identity_ids=None, actor=actor_user
            )
        except merging.MergeError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Merged profile {source_user.pk} into {into_user.pk}: {len(done.move)} identit"
            f"{'y' if len(done.move) == 1 else 'ies'} moved."
        )
