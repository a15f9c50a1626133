"""Issue 13 (1, 4): the providers' backends as small rooms, without hidden cycles or magic.

A newcomer greps for a backend class and finds it; settings load without importing any backend;
no backend module imports another behind a function-level import. (No import cycles, site-wide:
``test_layout_imports``.)
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The modules of the providers' backends (configuration, backends, checks, their shared mixins).
BACKEND_MODULES = sorted(
    path
    for path in [
        *(ROOT / "accounts" / "oidc").glob("*.py"),
        ROOT / "accounts" / "oidc.py",  # before issue 13: one module of ~1,300 lines
        ROOT / "accounts" / "backends.py",
        ROOT / "accounts" / "backend_mixins.py",
        ROOT / "accounts" / "issuers.py",
        ROOT / "accounts" / "providers.py",
        ROOT / "accounts" / "removed.py",
        ROOT / "accounts" / "strategy.py",
        ROOT / "sandbox" / "backends.py",
    ]
    if path.exists()
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(imported module, at module level)`` for every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, id(node) in top))
            found += [(f"{base}.{alias.name}", id(node) in top) for alias in node.names]
    return found


@pytest.mark.parametrize("path", BACKEND_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_backend_modules_are_small_rooms_without_magic(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 400, "a room of one concern stays under ~400 lines"
    assert "\n# ---" not in text and "    # ---" not in text, "a file that needs banners wants to be several"
    tree = ast.parse(text)
    assert not [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
    ], "backend classes are real attributes (no module __getattr__)"
    inline = [name for name, at_top in _imports(path) if not at_top]
    assert inline == [], f"function-level imports hide cycles: {inline}"


def test_settings_load_without_importing_any_backend():
    # settings.py reads the OIDC environment (accounts.oidc.config) while the app registry is not
    # ready; nothing it imports may define a social-auth backend (they need models and refusals).
    code = (
        "import sys; from django.conf import settings; settings.AUTHENTICATION_BACKENDS; "
        "from social_core.backends.base import BaseAuth; "
        "print(sorted(m for m, mod in list(sys.modules.items()) if m.startswith(('accounts', 'sandbox')) "
        "and any(isinstance(v, type) and issubclass(v, BaseAuth) for v in vars(mod).values())))"
    )
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "linking_site.settings",
        "OIDC_PROVIDERS": "okta",
        "OIDC_OKTA_ENDPOINT": "https://example.okta.com",
        "OIDC_OKTA_KEY": "k",
        "OIDC_OKTA_SECRET": "s",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
