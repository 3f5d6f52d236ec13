"""The commands the README and docs/ show run as written: every ``flask --app storefront …``
command named there exists (its ``--help`` runs), every ``scripts/…`` and ``bench`` module named
exists, no ``flask`` command is shown without ``--app storefront``, and no link leaves the
repository."""

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FLASK = re.compile(r"flask --app storefront((?: [a-z][a-z-]*(?:\|[a-z][a-z-]*)*)+)")


def _text() -> dict[Path, str]:
    # A table cell escapes its pipes: `product add\|update` is `product add|update`.
    return {page: page.read_text(encoding="utf-8").replace("\\|", "|") for page in PAGES}


def flask_commands() -> list[tuple[str, ...]]:
    """Each command path shown (``product add|update`` is two), as the words after the app."""
    found = set()
    for text in _text().values():
        for match in FLASK.finditer(text):
            words = [word.split("|") for word in match.group(1).split()]
            found.update(itertools.product(*words))
    return sorted(found)


def test_the_docs_show_flask_commands_to_check():
    assert ("db", "upgrade") in flask_commands() and ("catalog", "export") in flask_commands()


@pytest.mark.parametrize("command", flask_commands(), ids=" ".join)
def test_each_flask_command_shown_exists(command, tmp_path):
    embedded = {"DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}"}
    run = subprocess.run([sys.executable, "-m", "flask", "--app", "storefront", *command, "--help"], cwd=REPO,
                         env={**os.environ, **embedded}, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Usage:" in run.stdout


def test_no_flask_command_is_shown_without_the_app():
    bare = [f"{page.name}: {match.group(0)}" for page, text in _text().items()
            for match in re.finditer(r"(?<![\w/.-])flask (?!--app storefront)\S+", text)]
    assert bare == []


def test_every_script_and_bench_named_exists():
    named = {match.group(0) for text in _text().values()
             for match in re.finditer(r"(?<![\w/])scripts/[\w.-]+", text)}
    missing = [name for name in sorted(named) if not (REPO / name).is_file()]
    assert named and missing == []
    modules = {match.group(1) for text in _text().values() for match in re.finditer(r"-m (bench\.\w+)", text)}
    assert modules and [m for m in sorted(modules) if not (REPO / f"{m.replace('.', '/')}.py").is_file()] == []


def test_no_link_leaves_the_repository():
    """Markdown links point into the repository (a page, a picture, a section), never outside it."""
    outside = []
    for page, text in _text().items():
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target) or target.startswith("//"):
                outside.append(f"{page.name}: {target}")
                continue
            path = target.split("#")[0]
            if path and not (page.parent / path).resolve().exists():
                outside.append(f"{page.name}: {target} (missing)")
    assert outside == []
