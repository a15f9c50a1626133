"""The applications page and the discovery documents, mounted at the site's root."""

from django.urls import path

from accounts import converters  # noqa: F401  (registers <dbid:...>)

from . import endpoints, views

app_name = "authserver"

urlpatterns = [
    path(".well-known/oauth-authorization-server", endpoints.discovery_document, name="oauth_metadata"),
    path(".well-known/openid-configuration", endpoints.discovery_document, name="openid_configuration"),
    path("settings/apps/", views.apps_page, name="apps"),
    path("settings/apps/<dbid:application_id>/remove/", views.remove_access, name="remove_access"),
]
