"""Issue 13.2: one module owns every hand-written SQL statement (``vault/hotpath.py``), and only it
runs statements through ``vault.prepared``; nobody else builds SQL or takes rows apart by position."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ("accounts", "activity", "vault", "sandbox", "linking_site")
SQL_MODULE = "vault/hotpath.py"
# PostgreSQL's partitions of the activity table (issue 17.2): DDL the ORM has no words for, in the
# bottom app (which cannot import the vault's module).
PARTITION_MODULE = "activity/partitions.py"
RUNNER = "vault/prepared.py"
SQL = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|JOIN|WHERE)\b")
DECODER = re.compile(r"(_from_rows?|_sql)$")
RAW_CALLS = {"raw", "extra", "execute", "executemany", "RawSQL", "fetch_all", "model_from_row"}
# The readiness probe asks the database to answer at all; it reads no data of the site's.
ALLOWED = {("accounts/views.py", "SELECT 1"), ("accounts/views.py", "execute")}


def _site_modules():
    for package in SITE:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            found.add(id(first.value))
    return found


def test_sql_is_written_only_in_the_hot_path_module():
    offenders = []
    for name, tree in _site_modules():
        if name in (SQL_MODULE, PARTITION_MODULE):
            continue
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                match = SQL.search(node.value)
                if match and (name, node.value.strip()) not in ALLOWED:
                    offenders.append(f"{name}:{node.lineno}: {node.value.strip()[:60]!r}")
    assert offenders == []


def test_statements_run_only_from_the_hot_path_module():
    offenders = []
    for name, tree in _site_modules():
        if name in (SQL_MODULE, RUNNER, PARTITION_MODULE):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = (
                    node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                )
                if called in RAW_CALLS and (name, called) not in ALLOWED:
                    offenders.append(f"{name}:{node.lineno}: {called}()")
            if isinstance(node, ast.ImportFrom):
                names = {alias.name for alias in node.names}
                if "prepared" in names or (node.module or "").endswith("prepared"):
                    offenders.append(f"{name}:{node.lineno}: imports prepared")
    assert offenders == []
    assert not (ROOT / "linking_site" / "prepared.py").exists()  # the project package: settings, URLs


def test_no_row_is_decoded_by_position_outside_the_hot_path_module():
    """Rows of hand-written SQL come only out of the hot path module (the test above), as named
    types: no row decoders, SQL fragment builders or column-count offsets anywhere else."""
    offenders = []
    for name, tree in _site_modules():
        if name in (SQL_MODULE, RUNNER):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and DECODER.search(node.name):
                offenders.append(f"{name}:{node.lineno}: def {node.name}")
            if isinstance(node, ast.Name) and node.id.endswith("COLUMN_COUNT"):
                offenders.append(f"{name}:{node.lineno}: {node.id}")
    assert offenders == []
