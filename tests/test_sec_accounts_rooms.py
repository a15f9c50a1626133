"""Issue 13 (accounts): rooms of one concern, flow state in one typed module, "live profile" once.

(Small rooms: ``test_layout``; named URLs: ``test_layout_urls``; no import cycles:
``test_layout_imports``.)
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from accounts import flow_state
from accounts.flow_state import AuthFlow
from accounts.merging import merge_profiles
from accounts.models import User

from .flows import sign_in, start

ROOT = Path(__file__).resolve().parent.parent
SITE_CODE = [
    p
    for app in ("accounts", "vault", "sandbox")
    for p in (ROOT / app).rglob("*.py")
    if "migrations" not in p.parts
]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_linking_grab_bag_is_gone_and_the_login_hint_lives_with_its_caller():
    from vault import issuing

    assert not (ROOT / "accounts" / "linking.py").exists()
    assert callable(issuing.identity_matching_hint)


# Reading or writing a session by key: ``session[...]``, ``session.get/pop/setdefault(...)``,
# social-auth's ``strategy.session_get/set/pop(...)``.
SESSION_ACCESS = re.compile(r"session(\[|\.(get|pop|setdefault)\(|_(get|set|pop)\()")


def test_session_keys_are_read_and_written_only_in_flow_state():
    offenders = [
        f"{_rel(path)}:{number}: {line.strip()}"
        for path in SITE_CODE
        if path != ROOT / "accounts" / "flow_state.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SESSION_ACCESS.search(line)
    ]
    assert offenders == []
    assert SESSION_ACCESS.search('flow = request.session.get("auth_flow:github")')
    assert SESSION_ACCESS.search('strategy.session_pop("auth_flow_fresh")')


def test_active_and_not_merged_is_spelled_once():
    rule = re.compile(r"merged_into__isnull|merged_into_id is (not )?None|user__is_active=True")
    offenders = [
        f"{_rel(path)}:{number}: {line.strip()}"
        for path in SITE_CODE
        if path != ROOT / "accounts" / "models.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if rule.search(line)
    ]
    assert offenders == []


@pytest.mark.django_db
def test_live_profiles_leave_out_merged_and_deactivated_ones():
    kept = User.objects.create_user("kept", "kept@example.com")
    merged = User.objects.create_user("merged", "merged@example.com")
    closed = User.objects.create_user("closed", "closed@example.com", is_active=False)
    merge_profiles(into=kept, source=merged, move_identity_ids=None)
    merged.refresh_from_db()

    assert list(User.profiles.live()) == [kept]
    assert [kept.is_live, merged.is_live, closed.is_live] == [True, False, False]
    # Django's manager is still the default one (password sign-in looks users up through it).
    assert User._default_manager is User.objects
    assert User.objects.get_by_natural_key("closed") == closed


@pytest.mark.django_db
def test_a_started_flow_is_one_typed_record_that_asks_the_provider_for_a_fresh_sign_in():
    client = Client()
    _begin, authorize_url = start(client, "github", fresh="1", next="/settings/activity/")

    flow = flow_state.auth_flow(client.session, "github")
    assert isinstance(flow, AuthFlow)
    assert (flow.user_id, flow.purpose, flow.next, flow.fresh) == (
        None,
        "signin",
        "/settings/activity/",
        True,
    )
    query = parse_qs(urlsplit(authorize_url).query)
    assert query.get("prompt") == ["select_account"]  # GitHub's fresh sign-in argument


@pytest.mark.django_db
def test_a_finished_flow_leaves_no_flow_record_and_starts_sudo_mode():
    client = Client()
    sign_in(client, "github", email="alice@example.com")

    session = client.session
    assert flow_state.auth_flow(session, "github") is None
    assert flow_state.signed_in_at(session) is not None
