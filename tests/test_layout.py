"""Layout rules: every module a small room, templates in their app, migrations committed. (Which app
may import which, without cycles or imports hidden in functions: ``test_layout_imports``.)"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


OUR_APPS = ("activity", "accounts", "vault", "sandbox", "enterprise", "authserver")
#: Data documents, not code: a literal may be as long as what it describes.
DATA_DOCUMENTS = {"vault/openapi.py"}


def _rooms() -> list[Path]:
    return sorted(
        path
        for app in (*OUR_APPS, "bench")  # the benchmark's modules are rooms too (issue 17)
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts and str(path.relative_to(ROOT)) not in DATA_DOCUMENTS
    )


@pytest.mark.parametrize("path", _rooms(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_module_is_a_small_room_of_one_concern(path):
    source = path.read_text()
    assert len(source.splitlines()) <= 400, f"{path.relative_to(ROOT)} has grown past ~400 lines: split it"
    assert "# ---" not in source, "a banner says the module wants to be several"


def test_app_templates_live_in_their_app():
    """Django's convention: each app carries its templates; the project keeps only the site layout."""
    project_level = sorted(
        str(p.relative_to(ROOT / "templates")) for p in (ROOT / "templates").rglob("*") if p.is_file()
    )
    assert project_level == ["base.html"]


def test_every_app_template_is_the_one_django_loads():
    """No copy elsewhere shadows an app's template (the first directory found wins silently)."""
    from django.template.loader import get_template

    shadowed = []
    for app in OUR_APPS:
        base = ROOT / app / "templates"
        for path in base.rglob("*"):
            if path.is_file():
                name = str(path.relative_to(base))
                if Path(get_template(name).origin.name) != path:
                    shadowed.append(name)
    assert shadowed == []


def test_every_app_with_models_has_its_migrations():
    from django.apps import apps

    missing = [
        app
        for app in OUR_APPS
        if list(apps.get_app_config(app).get_models())
        and not sorted((ROOT / app / "migrations").glob("0001_*.py"))
    ]
    assert missing == []


@pytest.mark.django_db
def test_migrations_are_committed_for_every_model_change():
    """``makemigrations --check``: a model change without its migration fails here, not on deploy."""
    from django.core.management import call_command

    call_command("makemigrations", check=True, dry_run=True, verbosity=0)


def test_project_package_holds_settings_urls_and_entry_points_only():
    """Code with a concern of its own lives in the app that owns it, not in ``linking_site/``."""
    modules = sorted(p.name for p in (ROOT / "linking_site").glob("*.py"))
    assert modules == [
        "__init__.py",
        "asgi.py",
        "settings.py",
        "settings_authserver.py",
        "settings_test.py",
        "urls.py",
        "wsgi.py",
    ]
