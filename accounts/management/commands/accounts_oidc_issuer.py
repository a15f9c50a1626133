"""Move an OpenID Connect provider's identities to its new issuer, explicitly (issue 20.1).

``manage.py check`` refuses to start while identities are bound to an issuer their provider no
longer has; this is how staff confirm that the provider really moved (a tenant move) and that the
same ``sub`` means the same person at the new issuer.
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.issuers import RebindRefused, rebind_issuer
from accounts.providers import provider_title


class Command(BaseCommand):
    # It repairs exactly what the system check (oidc.E020) refuses; that check must not block it.
    requires_system_checks: list[str] = []
    help = (
        "Bind PROVIDER's identities made under another (or an unknown) issuer to its configured issuer "
        "--to, after a real move of the provider. Prints counts, never tokens; --dry-run first."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("provider", help="the backend name (oidc, or a name from OIDC_PROVIDERS)")
        parser.add_argument(
            "--to",
            required=True,
            metavar="ISSUER",
            help="the provider's new issuer; must be exactly its configured endpoint",
        )
        parser.add_argument(
            "--from",
            dest="from_issuer",
            metavar="ISSUER",
            help="only identities made under this old issuer (default: every other issuer, and unknown)",
        )
        parser.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")

    def handle(
        self, *args, provider: str, to: str, from_issuer: str | None, dry_run: bool, **options
    ) -> None:
        try:
            report = rebind_issuer(provider=provider, to_issuer=to, from_issuer=from_issuer, dry_run=dry_run)
        except RebindRefused as error:
            raise CommandError(str(error)) from None
        verb = "Would bind" if dry_run else "Bound"
        if not report.count:
            self.stdout.write(
                f"Nothing to do: every {provider_title(provider)} identity is bound to {report.to_issuer}."
            )
            return
        sources = ", ".join(
            f"{count} from {issuer or 'an unknown issuer'}" for issuer, count in sorted(report.moved.items())
        )
        self.stdout.write(
            f"{verb} {report.count} {provider_title(provider)} identities to {report.to_issuer} ({sources})."
        )
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")
