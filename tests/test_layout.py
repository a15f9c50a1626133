"""DESIGN.md's layout rule: ``vault`` may import ``accounts``; ``accounts`` never imports ``vault``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_accounts_never_imports_vault():
    offenders = []
    for path in (ROOT / "accounts").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n == "vault" or n.startswith("vault.")
            ]
    assert offenders == []
