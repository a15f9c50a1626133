"""Enterprise (SAML) connections for automation: add, list, disable, refresh."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from enterprise.connections import (
    ConnectionInputError,
    MetadataSource,
    add_connection,
    refresh_connection,
    refreshable_slugs,
    set_enabled,
)
from enterprise.models import EnterpriseConnection


class Command(BaseCommand):
    help = (
        "add <slug> --name <title> --metadata <file or https URL> [--domain d]... [--trust-email]; "
        "list; disable <slug>; refresh <slug> (re-reads the metadata from its file or URL)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="add a connection from the IdP's metadata")
        add.add_argument("slug")
        add.add_argument("--name", required=True)
        add.add_argument("--metadata", required=True, help="a file or an https URL")
        add.add_argument("--domain", action="append", default=[], help="a work email domain (repeatable)")
        add.add_argument("--trust-email", action="store_true", help="treat the IdP's email as verified")
        actions.add_parser("list", help="list connections")
        for name in ("disable", "enable"):
            actions.add_parser(name).add_argument("slug")
        refresh = actions.add_parser("refresh", help="re-read metadata from its file or URL (cron: --all)")
        refresh.add_argument("slug", nargs="?")
        refresh.add_argument("--all", action="store_true", help="every connection added from a file or URL")

    def handle(self, *args, action: str, **options) -> None:
        try:
            if action == "add":
                connection = add_connection(
                    slug=options["slug"],
                    name=options["name"],
                    source=MetadataSource.from_argument(options["metadata"]),
                    domains=options["domain"],
                    trust_email=options["trust_email"],
                )
                self.stdout.write(
                    f"Added {connection.slug} ({connection.name}): IdP {connection.entity_id}, "
                    f"{len(connection.signing_certificates)} signing certificate(s)."
                )
            elif action == "list":
                for connection in EnterpriseConnection.objects.all():
                    state = "enabled" if connection.enabled else "disabled"
                    self.stdout.write(
                        f"{connection.slug}\t{connection.name}\t{state}\t{connection.entity_id}\t"
                        f"{connection.email_domains or '-'}\t{len(connection.signing_certificates)} cert(s)"
                    )
            elif action in ("disable", "enable"):
                connection = set_enabled(slug=options["slug"], enabled=action == "enable")
                self.stdout.write(f"{connection.slug} is {action}d.")
            else:
                self._refresh(slug=options["slug"], every=options["all"])
        except ConnectionInputError as error:
            raise CommandError(str(error)) from None

    def _refresh(self, *, slug: str | None, every: bool) -> None:
        if bool(slug) == every:
            raise ConnectionInputError("refresh takes one slug, or --all.")
        slugs = [slug] if slug else list(refreshable_slugs())
        failed = 0
        for name in slugs:
            try:
                connection = refresh_connection(slug=name)
            except ConnectionInputError as error:
                if not every:
                    raise
                failed += 1
                self.stderr.write(f"{name}: {error}")
                continue
            self.stdout.write(
                f"Re-read {connection.slug}'s metadata: {len(connection.signing_certificates)} signing "
                "certificate(s)."
            )
        if failed:
            # Cron sees a failure; the connections that failed keep their last good metadata.
            raise ConnectionInputError(f"{failed} connection(s) could not be refreshed (see above).")
