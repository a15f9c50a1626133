"""Issue 13 (6): the project carries its own design, and nothing in it points outside.

``docs/architecture.md`` lists every module of the site (its rooms table is generated from the
tree: ``.venv/bin/python -m tests.test_architecture_doc`` prints it); no file refers to a design
document that is not in the repository; every ``docs/*.md`` a file names exists.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
APPS = ("activity", "accounts", "vault", "enterprise", "authserver", "sandbox", "linking_site")

#: Where the project's own text lives (installed packages, node modules and benchmark copies of
#: Django's static files are not the project's).
SEARCHED = (
    "accounts",
    "activity",
    "vault",
    "enterprise",
    "authserver",
    "sandbox",
    "linking_site",
    "tests",
    "bench",
    "examples",
    "docs",
    ".ci",
)
SKIPPED_PARTS = {"node_modules", "__pycache__", "results", ".venv"}
TEXT_SUFFIXES = {
    ".py",
    ".md",
    ".html",
    ".txt",
    ".toml",
    ".cfg",
    ".ini",
    ".yml",
    ".yaml",
    ".js",
    ".css",
    ".sh",
    "",
}


def _room_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    if "commands" in rel.parts and not rel.name.startswith("_"):
        return f"manage.py {rel.name}"
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _rooms(app: str) -> list[Path]:
    """The modules worth a row: not migrations, not empty package markers."""
    return [
        path
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
        and not (path.name == "__init__.py" and not path.read_text().strip())
    ]


def _purpose(path: Path) -> str:
    """The first sentence of the module's docstring, shortened to its head when long."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    match = re.match(r"(.+?\.)(\s|$)", paragraph)
    sentence = match.group(1) if match else paragraph
    if len(sentence) > 110:  # parentheses first, then what follows a colon
        sentence = re.sub(r" \([^()]*\)", "", sentence)
    if len(sentence) > 130 and ": " in sentence:
        sentence = sentence.split(": ", 1)[0]
    if not sentence:
        sentence = {"apps": "The app's configuration (`AppConfig`).", "urls": "URL patterns."}.get(
            path.stem, ""
        )
    return sentence.replace("``", "`").rstrip(".") + "."


def rooms_table() -> str:
    """The rooms table of docs/architecture.md, generated from the tree."""
    out = []
    for app in APPS:
        out += [f"#### `{app}/`", "", "| module | purpose |", "|---|---|"]
        for path in _rooms(app):
            out.append(f"| `{_room_name(path)}` | {_purpose(path)} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def test_the_rooms_table_lists_every_module_and_only_those():
    text = DOC.read_text()
    table = text[text.index("<!-- rooms table") : text.index("## How a token walks")]
    listed = set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE))
    present = {_room_name(path) for app in APPS for path in _rooms(app)}
    missing, gone = sorted(present - listed), sorted(listed - present)
    assert (missing, gone) == ([], []), (
        "docs/architecture.md's rooms table is out of date; print a fresh one with "
        "`.venv/bin/python -m tests.test_architecture_doc`"
    )


def _project_files():
    for top in SEARCHED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and not SKIPPED_PARTS & set(path.parts):
                yield path
    for name in ("README.md", "Makefile", "pyproject.toml", "requirements.in"):
        yield ROOT / name


def test_nothing_points_outside_the_repository():
    outside = re.compile(r"DESIGN" + r"\.md|\.\./shared/|/work" + "/shared")
    named_doc = re.compile(r"\bdocs/([\w.-]+\.md)\b")
    offenders = []
    for path in _project_files():
        text = path.read_text(errors="replace")
        rel = path.relative_to(ROOT)
        offenders += [f"{rel}: {m.group(0)}" for m in outside.finditer(text)]
        offenders += [
            f"{rel}: docs/{name} (missing)"
            for name in named_doc.findall(text)
            if not (ROOT / "docs" / name).exists()
        ]
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)\)", doc.read_text()):
            if "://" not in target and not (doc.parent / target).exists():
                offenders.append(f"{doc.relative_to(ROOT)}: link to {target} (missing)")
    assert offenders == []


def test_the_readme_leads_to_the_architecture():
    assert "](docs/architecture.md)" in (ROOT / "README.md").read_text()


if __name__ == "__main__":
    print(rooms_table())
