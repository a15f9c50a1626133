"""The OpenAPI document matches the running API: schemathesis fuzzes every operation.

Requests go to ``http://testserver``, which ``tests.sandbox_support`` routes into Django in process.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts.models import User
from vault import agents
from vault.openapi import document

from .flows import sign_in

schema = schemathesis.openapi.from_dict(document())


@pytest.fixture
def agent_key(client) -> str:
    sign_in(client, "github", email="fuzz@example.com")
    user = User.objects.get(email="fuzz@example.com")
    _row, key = agents.create_agent_key(user=user, name="fuzzer", providers=["github", "google-oauth2"])
    return key


@pytest.mark.django_db
def test_openapi_document_is_served_and_lists_every_endpoint(client):
    served = client.get("/api/v1/openapi.json").json()
    assert served == document()
    assert set(served["paths"]) == {
        "/api/v1/token",
        "/api/v1/connections",
        "/api/v1/connect-requests",
        "/api/v1/connect-requests/{request_id}",
    }


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case, agent_key, settings_rate_limits_off):
    # Every other check runs (no server error, status codes, content types, response schemas,
    # auth). "Schema-valid data is accepted" cannot hold for a token endpoint: a well-formed
    # request for an account the user has not linked is answered 400/403 by design (RFC 8693).
    case.call_and_validate(
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {agent_key}"},
        excluded_checks=[positive_data_acceptance],
    )
