"""The site's URLs plus the benchmark's reference views (loaded only by ``bench.settings``)."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("bench/floor", views.floor, name="bench_floor"),
    path("bench/floor-prepared", views.floor_prepared, name="bench_floor_prepared"),
    path("bench/baseline", views.baseline, name="bench_baseline"),
    path("bench/vault-only", views.vault_only, name="bench_vault_only"),
    path("bench/vault-token", views.vault_token, name="bench_vault_token"),
    path("", include("linking_site.urls")),
]
