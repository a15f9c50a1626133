"""List profiles that share a verified email: candidates for a merge. Never merges anything."""

import json

from django.core.management.base import BaseCommand

from accounts.suggestions import all_shared_verified_emails


class Command(BaseCommand):
    help = "List pairs of active profiles whose identities share a provider-verified email address."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", dest="as_json", help="print JSON")

    def handle(self, *args, as_json: bool = False, **options) -> None:
        shared = all_shared_verified_emails()
        pairs = [{"email": item.email, "user_ids": list(item.user_ids)} for item in shared]
        if as_json:
            self.stdout.write(json.dumps({"count": len(pairs), "suggestions": pairs}, indent=2))
            return
        self.stdout.write(f"{len(pairs)} verified email address(es) shared by more than one profile")
        for pair in pairs:
            ids = ", ".join(str(i) for i in pair["user_ids"])
            self.stdout.write(
                f"  {pair['email']}: profiles {ids}  (merge with: accounts_merge <into> <from>)"
            )
