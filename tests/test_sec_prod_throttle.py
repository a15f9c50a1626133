"""Staff password sign-in throttling (issue 14 item 7): after five failed passwords from one address
the sixth attempt is refused without looking at the password, and the refusal is in activity."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from activity.models import Activity

PASSWORD = "pw-for-tests-only-123"


@pytest.fixture
def staff(db):
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


def _attempt(client: Client, url: str, password: str):
    return client.post(url, {"username": "root", "password": password, "next": "/admin/"})


@pytest.mark.parametrize("url", ["/staff/login/", "/admin/login/"])
def test_sixth_failed_staff_sign_in_from_one_address_is_refused_and_recorded(staff, settings, url):
    assert settings.DEBUG is False
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(5):
        response = _attempt(attacker, url, "wrong-password")
        assert response.status_code == 200
        assert "correct username and password" in response.content.decode()
    assert not Activity.objects.filter(kind="sign_in_throttled").exists()

    # The right password now changes nothing: the address is locked out.
    refused = _attempt(attacker, url, PASSWORD)
    assert refused.status_code == 200
    assert "Too many failed sign-ins from your address" in refused.content.decode()
    assert "_auth_user_id" not in attacker.session
    entry = Activity.objects.get(kind="sign_in_throttled")
    assert entry.ip_address == "203.0.113.7" and entry.data == {"username": "root"}
    assert PASSWORD not in str(entry.data) + entry.message

    # Another address is not affected.
    other = Client(REMOTE_ADDR="198.51.100.2")
    signed_in = _attempt(other, url, PASSWORD)
    assert signed_in.status_code == 302
    assert other.session["_auth_user_id"] == str(staff.pk)


def test_failures_below_the_limit_still_allow_the_right_password(staff):
    person = Client(REMOTE_ADDR="203.0.113.8")
    for _ in range(4):
        _attempt(person, "/staff/login/", "typo")
    assert _attempt(person, "/staff/login/", PASSWORD).status_code == 302
    assert not Activity.objects.filter(kind="sign_in_throttled").exists()
