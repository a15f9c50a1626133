"""Named URLs everywhere: a page's path is written once, in its app's ``urls.py``.

Templates use ``{% url %}`` and Python uses ``reverse()``, so moving a page moves every link to it;
a hard-coded path would keep pointing at the old place (and nobody would notice until a 404).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("activity", "accounts", "vault", "sandbox")

# The site's own pages (the agent API's paths are its public contract, written in the OpenAPI text).
PAGE_PATH = re.compile(r"^/(settings|connect|login|logout|staff|signin|complete|admin)/|^/\?")
IN_TEMPLATE = re.compile(r"""(?:href|action|value|src)="/(?!/)""")


def _templates() -> list[Path]:
    found = sorted((ROOT / "templates").rglob("*.html"))
    for app in APPS:
        found += sorted((ROOT / app / "templates").rglob("*.html"))
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, owners)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def test_templates_link_to_pages_by_name():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _templates()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if IN_TEMPLATE.search(line)
    ]
    assert offenders == []


def test_python_code_reverses_page_urls():
    offenders = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text())
            docstrings = _docstrings(tree)
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and PAGE_PATH.search(node.value)
            ]
    assert offenders == []


def test_the_scan_sees_what_it_looks_for():
    """The two scans above would pass on nothing at all; they do find the kinds of paths they forbid."""
    assert IN_TEMPLATE.search('<a href="/settings/connections/">')
    assert not IN_TEMPLATE.search("<a href=\"{% url 'accounts:connections' %}\">")
    assert not IN_TEMPLATE.search('<a href="//cdn.example/">')
    tree = ast.parse('redirect(f"/connect/{request_id}/")\nx = "/?" + query\n')
    found = [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and PAGE_PATH.search(str(n.value))
    ]
    assert sorted(found) == ["/?", "/connect/"]
