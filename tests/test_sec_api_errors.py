"""Issue 13.3: the agent API's error table is declared once (``vault.errors.ERROR_TABLE``); the
classes, the RFC 8693 mapping, the OpenAPI document and the README's table all agree with it.

Before, the four were kept by hand and could drift apart unnoticed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client

from vault import agents, api, errors
from vault.openapi import document

ROOT = Path(__file__).resolve().parent.parent

#: Every error class an agent can receive, with the one an agent can never see (the abstract base).
CLASSES = [
    errors.InvalidRequest,
    errors.NotFound,
    errors.ConnectionRequired,
    errors.InsufficientScope,
    errors.ScopeLimitExceeded,
    errors.ReauthorizationRequired,
    errors.ProviderUnavailable,
    errors.ProviderMisconfigured,
    errors.VaultUnavailable,
    errors.VaultKeyError,
    errors.DecryptionFailed,
    errors.VaultFault,
    errors.RateLimited,
    errors.DatabaseBusy,
    errors.LimitsUnavailable,
    agents.InvalidKey,
    agents.AccessDenied,
    api.MethodNotAllowed,
]


def _readme_table() -> dict[str, tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- agent-api-errors -->", 1)[1].split("<!-- /agent-api-errors -->", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in table.strip().splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = (cells[1], cells[2])
    return rows


def test_the_readme_table_names_exactly_the_codes_with_their_statuses():
    readme = _readme_table()
    assert set(readme) == set(errors.ERROR_TABLE)
    for code, row in errors.ERROR_TABLE.items():
        statuses, rfc = readme[code]
        assert statuses == ", ".join(map(str, row.statuses)), code
        assert rfc == f"`{row.rfc_error}` {row.rfc_status}", code


def test_every_error_class_takes_its_status_from_the_table():
    for cls in CLASSES:
        row = errors.ERROR_TABLE[cls.code]
        assert cls.status in row.statuses, cls
        if issubclass(cls, errors.RetryLater):
            assert row.retry_after, cls
    assert {cls.code for cls in CLASSES} | {"server_error"} == set(errors.ERROR_TABLE)


def test_a_class_with_a_code_outside_the_table_is_refused_when_defined():
    with pytest.raises(TypeError, match=r"not in vault\.errors\.ERROR_TABLE"):
        type("Invented", (errors.TokenVaultError,), {"code": "invented"})
    with pytest.raises(TypeError, match="status"):
        type("WrongStatus", (errors.TokenVaultError,), {"code": "not_found", "status": 410})
    with pytest.raises(TypeError, match="Retry-After"):
        type("WrongRetry", (errors.RetryLater,), {"code": "not_found"})


def test_the_openapi_document_lists_every_code_with_its_description():
    spec = document()
    schema = spec["components"]["schemas"]["Error"]["properties"]
    assert set(schema["linking_site_error"]["enum"]) == set(errors.ERROR_TABLE)
    assert set(errors.ERROR_TABLE) <= set(schema["error"]["enum"])
    rfc_codes = {row.rfc_error for row in errors.ERROR_TABLE.values()} | {"unsupported_grant_type"}
    assert rfc_codes <= set(schema["error"]["enum"])
    described: dict[str, set[str]] = {}
    for operation in (op for path in spec["paths"].values() for op in path.values()):
        for status, response in operation["responses"].items():
            for code in re.findall(r"`([a-z_]+)`: ", response["description"]):
                described.setdefault(code, set()).add(int(status))
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"]
    for code, row in errors.ERROR_TABLE.items():
        if code != "server_error":  # answered by Django's handler, outside any operation
            assert row.status in described[code], code


@pytest.mark.django_db
def test_the_rfc8693_form_answers_the_tables_counterpart():
    response = Client().post(
        "/api/v1/token",
        {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "connection": "github"},
    )
    row = errors.ERROR_TABLE["invalid_token"]
    assert response.status_code == row.rfc_status
    assert (
        response.json()["error"] == row.rfc_error and response.json()["linking_site_error"] == "invalid_token"
    )
    assert errors.rfc_error("insufficient_scope") == ("invalid_scope", 400)


@pytest.mark.parametrize("status", [400, 403, 404, 500])
def test_what_fails_outside_a_view_answers_a_code_of_the_table(rf, status):
    response = api.json_error_handler(status)(rf.get("/api/v1/nowhere"))
    code = json.loads(response.content)["error"]
    assert code in errors.ERROR_TABLE and status in errors.ERROR_TABLE[code].statuses
