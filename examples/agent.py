#!/usr/bin/env python3
"""A minimal agent: get a provider token from linking_site, asking its user to connect if needed.

    LINKING_SITE_AGENT_KEY=lsa_... python examples/agent.py --site http://127.0.0.1:8000 --connection github

It asks for a token; when the site answers ``connection_required``, ``insufficient_scope`` or
``reauthorization_required`` it prints the URL for its user, polls the connect request until the
user approved (or declined, or it expired), then asks again. Only ``requests`` is needed.
Exit status: 0 token obtained, 1 the user declined or the request expired, 2 any other error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import requests

ACTIONABLE = {"connection_required", "insufficient_scope", "reauthorization_required"}


def ask_for_token(
    session: requests.Session, site: str, connection: str, scopes: list[str]
) -> requests.Response:
    return session.post(f"{site}/api/v1/token", json={"connection": connection, "scopes": scopes}, timeout=30)


def wait_for_user(session: requests.Session, site: str, request_id: str, deadline: float) -> str:
    """Poll the connect request until it is no longer pending; returns its final status."""
    while time.monotonic() < deadline:
        answer = session.get(f"{site}/api/v1/connect-requests/{request_id}", timeout=30)
        if answer.status_code == 429:
            time.sleep(int(answer.headers.get("Retry-After", "5")))
            continue
        answer.raise_for_status()
        status = answer.json()["status"]
        if status != "pending":
            return status
        time.sleep(1)
    return "expired"


def default_site() -> str:
    """LINKING_SITE_URL, else the SITE_URL/PORT a `make run` .env exports, else the dev default."""
    fallback = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
    return os.environ.get("LINKING_SITE_URL") or os.environ.get("SITE_URL") or fallback


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", default=default_site(), help="the site (default: $LINKING_SITE_URL)")
    parser.add_argument("--connection", default="github", help="provider name, e.g. github or google-oauth2")
    parser.add_argument("--scope", action="append", default=[], help="a scope to ask for (repeatable)")
    parser.add_argument("--wait", type=int, default=600, help="seconds to wait for the user")
    args = parser.parse_args()
    key = os.environ.get("LINKING_SITE_AGENT_KEY")
    if not key:
        print("Set LINKING_SITE_AGENT_KEY to an agent key from Settings > Agents.", file=sys.stderr)
        return 2
    site = args.site.rstrip("/")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    try:
        return run(session, site, args)
    except requests.ConnectionError:
        # One line instead of a traceback: the usual cause is the site not running, or another port.
        print(f"Cannot reach linking_site at {site}: is it running? Set LINKING_SITE_URL.", file=sys.stderr)
        return 2
    except (requests.RequestException, ValueError) as error:
        print(
            f"linking_site at {site} did not answer as expected: {error.__class__.__name__}.", file=sys.stderr
        )
        return 2


def run(session: requests.Session, site: str, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.wait

    for _attempt in range(3):
        answer = ask_for_token(session, site, args.connection, args.scope)
        body = answer.json()
        if answer.status_code == 200:
            token = body["access_token"]
            print(
                f"Got a {body['connection']} token ({token[:4]}…, expires in {body['expires_in']} s, "
                f"scopes: {body['scope'] or 'none listed'}).",
                flush=True,
            )
            return 0
        if body.get("error") in ACTIONABLE and body.get("authorize_url"):
            print(f"{body['error_description']}", flush=True)
            print(f"Please open this link to let me continue: {body['authorize_url']}", flush=True)
            status = wait_for_user(session, site, body["connect_request"], deadline)
            print(f"Connect request {status}.", flush=True)
            if status != "completed":
                return 1
            continue
        if answer.status_code in (429, 503) and "Retry-After" in answer.headers:
            time.sleep(min(int(answer.headers["Retry-After"]), 30))
            continue
        print(
            f"Error {answer.status_code} {body.get('error')}: {body.get('error_description')}",
            file=sys.stderr,
        )
        return 2
    print("Gave up after three attempts.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
