"""Agent API (``/api/v1/``), the agents page and connect-request pages."""

from django.urls import path, re_path, register_converter

from accounts import converters  # noqa: F401  (registers <dbid:...>)

from . import api, key_pages, views
from .connect import ConnectRequestIdConverter

# Ids in page URLs are checked by their format before any query: a malformed one does not match,
# so the page is a 404.
register_converter(ConnectRequestIdConverter, "crid")

app_name = "vault"

urlpatterns = [
    path("api/v1/token", api.token_endpoint, name="api_token"),
    path("api/v1/connections", api.connections_endpoint, name="api_connections"),
    path("api/v1/connect-requests", api.connect_requests_endpoint, name="api_connect_requests"),
    path(
        # <str:...>, not <crid:...>: any id is this endpoint's (405 for other methods, 401 for a
        # bad key), and vault.connect checks its format before any query (JSON not_found).
        "api/v1/connect-requests/<str:request_id>",
        api.connect_request_endpoint,
        name="api_connect_request",
    ),
    path("api/v1/openapi.json", api.openapi_document, name="api_openapi"),
    re_path(r"^api/(?P<rest>.*)$", api.not_found),
    path("settings/agents/", views.agents_page, name="agents"),
    path("settings/agents/<dbid:key_id>/revoke/", views.revoke_key, name="agent_revoke"),
    path("settings/agents/<dbid:key_id>/history/", key_pages.key_history, name="agent_history"),
    path("settings/agents/<dbid:key_id>/rename/", key_pages.rename_key, name="agent_rename"),
    path("connect/<crid:request_id>/", views.connect_page, name="connect_request"),
    path("connect/<crid:request_id>/done/", views.connect_done, name="connect_done"),
    path("connect/<crid:request_id>/decline/", views.connect_decline, name="connect_decline"),
]
