"""Agent API (``/api/v1/``), the agents page and connect-request pages."""

from django.urls import path, re_path

from . import api, views

urlpatterns = [
    path("api/v1/token", api.token_endpoint, name="api_token"),
    path("api/v1/connections", api.connections_endpoint, name="api_connections"),
    path("api/v1/connect-requests", api.connect_requests_endpoint, name="api_connect_requests"),
    path(
        "api/v1/connect-requests/<str:request_id>", api.connect_request_endpoint, name="api_connect_request"
    ),
    path("api/v1/openapi.json", api.openapi_document, name="api_openapi"),
    re_path(r"^api/(?P<rest>.*)$", api.not_found),
    path("settings/agents/", views.agents_page, name="agents"),
    path("settings/agents/<int:key_id>/revoke/", views.revoke_key, name="agent_revoke"),
    path("connect/<str:request_id>/", views.connect_page, name="connect_request"),
    path("connect/<str:request_id>/done/", views.connect_done, name="connect_done"),
    path("connect/<str:request_id>/decline/", views.connect_decline, name="connect_decline"),
]
