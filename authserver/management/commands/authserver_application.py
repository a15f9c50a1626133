"""Register, list and remove OAuth applications (web apps, MCP clients, resource servers) as staff.

``add`` prints the client_id and, once, the secret; ``list`` and ``remove`` never print secrets.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from oauth2_provider.models import Application

from authserver import applications, clients
from authserver.models import ApplicationPolicy


def _scopes(values: list[str]) -> dict[str, list[str]]:
    """``--scopes github=read:user,repo`` (repeatable): per connection, the provider scopes allowed."""
    found: dict[str, list[str]] = {}
    for value in values:
        connection, _, scopes = value.partition("=")
        if not scopes:
            raise CommandError(f"--scopes wants connection=scope,scope (got {value!r}).")
        found.setdefault(connection.strip(), []).extend(s for s in scopes.replace(" ", ",").split(",") if s)
    return found


class Command(BaseCommand):
    help = "Register (add), list or remove applications of the site's authorization server."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="register an application; prints its client_id and secret once")
        add.add_argument("--name", required=True)
        add.add_argument("--redirect-uri", action="append", default=[], dest="redirect_uris")
        add.add_argument("--resource", default="", help="for a resource server: the audience URI it serves")
        add.add_argument("--connections", default="", help="comma-separated, e.g. github,google-oauth2")
        add.add_argument("--scopes", action="append", default=[], help="connection=scope,scope (repeatable)")
        add.add_argument("--public", action="store_true", help="a public client (no secret; PKCE only)")
        add.add_argument("--json", action="store_true", help="print JSON")
        listing = actions.add_parser("list", help="list applications (no secrets)")
        listing.add_argument("--json", action="store_true")
        remove = actions.add_parser("remove", help="remove an application and everything it holds")
        remove.add_argument("client_id")

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"_{action}")(**options)
        except applications.ApplicationError as error:
            raise CommandError(str(error)) from None

    def _add(self, *, name, redirect_uris, resource, connections, scopes, public, json: bool, **_) -> None:
        made = applications.register(
            name=name,
            redirect_uris=redirect_uris,
            resource=resource,
            connections=[c.strip() for c in connections.split(",") if c.strip()],
            provider_scopes=_scopes(scopes),
            public=public,
        )
        answer = {"client_id": made.application.client_id, "client_secret": made.secret, "name": name}
        if json:
            self.stdout.write(_json(answer))
            return
        self.stdout.write(f"Registered {name!r}.\nclient_id: {made.application.client_id}")
        if made.secret:
            self.stdout.write(f"client_secret: {made.secret}\n(shown once: only its hash is kept)")

    def _list(self, *, json: bool, **_) -> None:
        rows = []
        for app in Application.objects.order_by("created"):
            policy = ApplicationPolicy.objects.filter(application=app).first()
            rows.append(
                {
                    "client_id": app.client_id,
                    "name": clients.title(app),
                    "type": app.client_type,
                    "registered": "self" if clients.is_self_registered(app) else "staff",
                    "resource": policy.resource if policy else "",
                    "connections": policy.connections if policy else [],
                }
            )
        if json:
            self.stdout.write(_json(rows))
            return
        for row in rows:
            self.stdout.write(
                f"{row['client_id']}  {row['name']}  {row['type']}, {row['registered']}-registered"
                + (f", resource {row['resource']}" if row["resource"] else "")
            )
        self.stdout.write(f"{len(rows)} application(s).")

    def _remove(self, *, client_id: str, **_) -> None:
        removed = applications.remove(client_id=client_id)
        self.stdout.write(f"Removed {clients.title(removed)!r} and its grants and tokens.")


def _json(value: object) -> str:
    return json.dumps(value, indent=2)
