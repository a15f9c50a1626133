"""URL patterns."""

from django.urls import path

from . import views

app_name = "enterprise"

urlpatterns = [
    path("saml/choose/", views.choose, name="choose"),
    path("saml/<slug:slug>/metadata/", views.metadata, name="metadata"),
    path("saml/<slug:slug>/acs/", views.acs, name="acs"),
]
