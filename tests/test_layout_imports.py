"""Issue 13 (4): layering that holds. The site's own modules import each other one way, without
cycles, and at the top of the module, so that reading a module's imports tells what it needs.

Imports point one way: ``vault`` -> ``accounts`` -> ``activity`` (``activity`` imports nothing of
ours; ``sandbox`` and ``linking_site`` sit on top, and no app imports ``linking_site``). Where
``accounts`` needs the vault, it asks its adapter (``accounts.adapter``, named by
``ACCOUNTS_ADAPTER``) or social-auth's pipelines.

Every function-level import is in ``ALLOWED_INLINE`` with the reason it cannot be at the top: an
optional dependency, ``AppConfig.ready()``, the vault package's lazy public exports, or a data
migration's ``RunPython``. Anything else is an import cycle being hidden, or a module that needs
more than it says.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ("activity", "accounts", "vault", "sandbox", "linking_site", "enterprise", "authserver")

#: ``(importing module, imported module)`` -> why the import sits inside a function.
ALLOWED_INLINE = {
    # AppConfig.ready(): modules that register checks and signal receivers need the app registry.
    ("accounts.apps", "accounts.checks"): "AppConfig.ready()",
    ("accounts.apps", "accounts.signals"): "AppConfig.ready()",
    ("accounts.apps", "accounts.oidc.checks"): "AppConfig.ready()",
    ("enterprise.apps", "enterprise.checks"): "AppConfig.ready()",
    ("authserver.apps", "authserver.applications"): "AppConfig.ready()",
    ("authserver.apps", "authserver.checks"): "AppConfig.ready()",
    ("vault.apps", "vault.key_checks"): "AppConfig.ready()",
    ("vault.apps", "vault.plaintext"): "AppConfig.ready()",
    ("vault.apps", "vault.signals"): "AppConfig.ready()",
    # Optional dependencies: installed only where that backend is used.
    ("vault.prepared", "psycopg"): "optional dependency: PostgreSQL only",
    ("vault.prepared", "psycopg.types.datetime"): "optional dependency: PostgreSQL only",
    ("vault.ratelimit", "redis.exceptions"): "optional dependency: a Redis cache only",
    # A data migration (issue 20.1's issuer backfill) loads today's code only when it runs: the
    # migration graph is loaded by every ``migrate`` and ``makemigrations --check``, and a module
    # renamed later must break only the migration that uses it, and only if it still has to run.
    ("accounts.migrations.0005_identitydetails_issuer", "accounts.issuers"): "a data migration's RunPython",
    # ``vault.get_access_token`` and the error classes are the package's public API; importing them
    # with the package would import models while apps load, which Django forbids.
    ("vault", "vault.access"): "the vault package's lazy public exports",
    ("vault", "vault.errors"): "the vault package's lazy public exports",
    ("vault", "vault.scopes"): "the vault package's lazy public exports",
}

#: ``(importing app, imported app)`` pairs that must never occur, in any kind of import.
FORBIDDEN = {
    ("activity", "accounts"): "activity imports nothing of ours",
    ("activity", "vault"): "activity imports nothing of ours",
    ("activity", "sandbox"): "activity imports nothing of ours",
    ("activity", "linking_site"): "activity imports nothing of ours",
    ("accounts", "vault"): "accounts never imports the vault (it asks its adapter)",
    ("accounts", "sandbox"): "accounts never imports the development stand-ins",
    ("vault", "sandbox"): "the vault never imports the development stand-ins",
    ("accounts", "linking_site"): "apps never import the project package (settings: django.conf)",
    ("vault", "linking_site"): "apps never import the project package (settings: django.conf)",
    ("sandbox", "linking_site"): "apps never import the project package (settings: django.conf)",
    ("enterprise", "vault"): "enterprise builds on accounts only (SAML gives no tokens)",
    ("enterprise", "sandbox"): "enterprise never imports the development stand-ins",
    ("enterprise", "linking_site"): "apps never import the project package (settings: django.conf)",
    ("accounts", "enterprise"): "accounts never imports the apps built on it",
    ("activity", "enterprise"): "activity imports nothing of ours",
    ("vault", "enterprise"): "the vault does not know company sign-in",
    ("vault", "authserver"): "the vault never imports authserver (settings name its hooks)",
    ("accounts", "authserver"): "accounts never imports the apps built on it",
    ("activity", "authserver"): "activity imports nothing of ours",
    ("authserver", "sandbox"): "authserver never imports the development stand-ins",
    ("authserver", "linking_site"): "apps never import the project package (settings: django.conf)",
    ("authserver", "enterprise"): "authserver builds on vault and accounts only",
    ("enterprise", "authserver"): "enterprise builds on accounts only",
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (the deepest one that exists, for names of ours)
    line: int
    inline: bool  # inside a function (or a lazy ``import_module`` call)
    type_only: bool  # under ``if TYPE_CHECKING:``: never runs


def _modules() -> dict[str, Path]:
    """Every module of the site's own packages (migrations too: they run in every deploy)."""
    found = {}
    for package in SITE:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> list[Import]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def resolve(module: str, level: int) -> str:
        if not level:
            return module
        anchor = package.split(".")[: len(package.split(".")) - level + 1]
        return ".".join([*anchor, module] if module else anchor)

    # A lazy-export table, ``_EXPORTS = {"name": ".module", ...}``, at module level.
    lazy_exports = sorted(
        {
            module
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            and "_EXPORTS" in ast.unparse(node.targets[0] if isinstance(node, ast.Assign) else node.target)
            and node.value is not None
            for module in ast.literal_eval(node.value).values()
        }
    )
    found: list[Import] = []

    def walk(node: ast.AST, *, inline: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_inline = inline or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            child_type_only = type_only or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            )
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = resolve(child.module or "", child.level)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in child.names
                ]
            elif (
                isinstance(child, ast.Call)
                and ast.unparse(child.func) in ("import_module", "importlib.import_module")
                and child.args
            ):
                # ``import_module(".access", __name__)``: an import all the same, made lazily. A
                # name computed at run time must come from the module's ``_EXPORTS`` table.
                first = child.args[0]
                names = [first.value] if isinstance(first, ast.Constant) else lazy_exports or ["<unknown>"]
                targets = [
                    resolve(n.lstrip("."), len(n) - len(n.lstrip("."))) if n.startswith(".") else n
                    for n in names
                ]
                child_inline = True
            for target in dict.fromkeys(targets):
                found.append(Import(name, target, child.lineno, child_inline, child_type_only))
            walk(child, inline=child_inline, type_only=child_type_only)

    walk(tree, inline=False, type_only=False)
    return found


def _all_imports() -> list[Import]:
    modules = _modules()
    return [found for name, path in modules.items() for found in _imports(name, path, set(modules))]


def _app(module: str) -> str:
    return module.split(".")[0]


def test_every_function_level_import_is_an_allowed_exception():
    """No import hides inside a function unless it must (the list above says why for each)."""
    inline = {(i.source, i.target) for i in _all_imports() if i.inline and not i.type_only}
    unexplained = sorted(
        f"{source} imports {target} inside a function" for source, target in inline - set(ALLOWED_INLINE)
    )
    assert unexplained == []
    # The list stays true: an exception that is no longer needed is taken off it.
    assert sorted(set(ALLOWED_INLINE) - inline) == []


def test_no_import_cycle_among_the_sites_modules():
    """Every import that runs counts, function-level ones too; only ``ALLOWED_INLINE`` is left out
    (``ready()`` runs after every module is loaded; the others are not modules of ours or load
    lazily)."""
    modules = set(_modules())
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for i in _all_imports():
        if i.type_only or (i.source, i.target) in ALLOWED_INLINE or i.target not in modules:
            continue
        if i.target != i.source:
            graph[i.source].add(i.target)
    # The vault package's own body imports nothing of ours (its exports load lazily).
    assert graph["vault"] == set()

    cycles: list[str] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in path:
            cycles.append(" -> ".join([*path[path.index(name) :], name]))
            return
        path.append(name)
        for target in sorted(graph[name]):
            visit(target)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert cycles == []


@pytest.mark.parametrize(("importer", "imported"), sorted(FORBIDDEN))
def test_imports_point_one_way(importer, imported):
    """``activity`` imports nothing of ours; ``accounts`` never the vault or the sandbox; the vault
    never the sandbox. Every kind of import counts, ``TYPE_CHECKING`` ones too."""
    offenders = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in _all_imports()
        if _app(i.source) == importer and _app(i.target) == imported
    ]
    assert offenders == [], FORBIDDEN[(importer, imported)]


def test_the_finder_sees_every_kind_of_import(tmp_path):
    """The checks above are only as good as the parser: it finds relative, function-level, lazy
    and type-only imports."""
    source = tmp_path / "__init__.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from importlib import import_module\n"
        "from . import models\n"
        "from .sub import thing\n"
        "if TYPE_CHECKING:\n"
        "    from vault.models import TokenSet\n"
        "_EXPORTS = {'thing': '.exported'}\n"
        "def f():\n"
        "    from ..other import x\n"
        "    return import_module('.lazy', __name__)\n"
        "def __getattr__(name):\n"
        "    return import_module(_EXPORTS[name], __name__)\n"
    )
    known = {"pkg.app", "pkg.app.models", "pkg.app.sub", "pkg.other"}
    found = {(i.target, i.line, i.inline, i.type_only) for i in _imports("pkg.app", source, known)}
    assert found == {
        ("typing", 1, False, False),
        ("importlib", 2, False, False),
        ("pkg.app.models", 3, False, False),
        ("pkg.app.sub", 4, False, False),
        ("vault.models", 6, False, True),
        ("pkg.other", 9, True, False),
        ("pkg.app.lazy", 10, True, False),
        ("pkg.app.exported", 12, True, False),
    }


TEMPLATE_TAG = re.compile(r"""{%\s*(?:include|extends)\s+["']([^"']+)["']""")


def test_templates_point_the_same_way():
    """An app's templates never include or extend a template of an app it may not import (the
    connections page once included the vault's token status; the adapter renders it now)."""
    owner = {
        path.relative_to(ROOT / app / "templates").as_posix(): app
        for app in SITE
        for path in (ROOT / app / "templates").rglob("*")
        if path.is_file()
    }
    offenders = [
        f"{path.relative_to(ROOT)} uses {name}"
        for app in SITE
        for path in (ROOT / app / "templates").rglob("*")
        if path.is_file()
        for name in TEMPLATE_TAG.findall(path.read_text())
        if (app, owner.get(name, "")) in FORBIDDEN
    ]
    assert offenders == []
