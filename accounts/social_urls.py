"""social-auth's begin and callback under the ``social`` namespace social-auth reverses.

Only these two: social-auth's own disconnect URLs would remove every identity of a provider and
skip this site's confirmation, sudo mode and last-method rules, so they are not mounted.
"""

from django.urls import path
from social_django import views as social_views

from . import views

app_name = "social"

urlpatterns = [
    path("login/<str:backend>/", views.begin, name="begin"),
    path("complete/<str:backend>/", social_views.complete, name="complete"),
]
