"""The commands the README and docs/ show run as written, from the repository: every flask command
is printed as ``.venv/bin/flask --app storefront …`` (the docs' one convention: no activated
virtualenv assumed), each exists (its ``--help`` runs) and takes every option shown with it, and the
ones that need nothing named (``db upgrade``, ``seed``, ``catalog export``, ``sweep``, ``jobs failed``)
run exactly as printed on a fresh embedded database; every ``scripts/…`` and ``bench`` module named
exists, and no link leaves the repository."""

import itertools
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FLASK = re.compile(r"\.venv/bin/flask --app\s+storefront((?:\s+[a-z][a-z-]*(?:\|[a-z][a-z-]*)*)+)")
# Each command as printed: a code span, or a line of a code block (its comment left off).
PRINTED = re.compile(r"`(\.venv/bin/flask --app\s+storefront[^`]*)`|^(\.venv/bin/flask --app storefront[^#\n]*)", re.M)
# Commands that name nothing of a shop's own (no product, no file): run as printed.
RUN_AS_PRINTED = {("db", "upgrade"), ("seed",), ("catalog", "export"), ("sweep",), ("jobs", "failed")}


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
    assert "--pause" in printed_commands()[("product", "update")]


def printed_commands() -> dict[tuple[str, ...], set[str]]:
    """Each command path printed, with every option printed beside it anywhere."""
    options: dict[tuple[str, ...], set[str]] = {}
    for text in _text().values():
        for match in PRINTED.finditer(text):
            printed = " ".join((match.group(1) or match.group(2)).split())
            path = FLASK.match(printed)
            if path is None:  # the convention itself, no command named (".venv/bin/flask --app storefront …")
                continue
            for command in itertools.product(*[word.split("|") for word in path.group(1).split()]):
                options.setdefault(command, set()).update(re.findall(r"(?<![\w-])--[a-z][a-z-]*", printed[path.end():]))
    return options


def _flask(*args, env: dict, timeout=60):
    return subprocess.run([str(REPO / ".venv" / "bin" / "flask"), "--app", "storefront", *args], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", flask_commands(), ids=" ".join)
def test_each_flask_command_shown_exists_and_takes_the_options_shown(command, tmp_path):
    embedded = {"DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}"}
    run = _flask(*command, "--help", env=embedded)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Usage:" in run.stdout
    taken = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", run.stdout))
    assert printed_commands().get(command, set()) - taken - {"--help"} == set()


def test_the_commands_that_name_nothing_run_exactly_as_printed(tmp_path):
    """From a fresh embedded database: each printed line run as it stands (after ``db upgrade``)."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}", "SECRET_KEY": "x" * 40}
    lines = sorted({" ".join((match.group(1) or match.group(2)).split()) for text in _text().values()
                    for match in PRINTED.finditer(text)})
    ran = set()
    for line in sorted(lines, key=lambda line: "db upgrade" not in line):  # the schema first
        words = line.split()[3:]
        if tuple(words) in RUN_AS_PRINTED:
            run = _flask(*words, env=env, timeout=120)
            assert run.returncode == 0, f"{line}: {run.stdout}{run.stderr}"
            ran.add(tuple(words))
    assert ran == RUN_AS_PRINTED


def test_no_flask_command_is_shown_but_as_the_docs_convention_has_it():
    bare = [f"{page.name}: {match.group(0)}" for page, text in _text().items()
            for match in re.finditer(r"(?<![\w/.-])flask (?!--app storefront)\S+|(?<!\.venv/bin/)(?<![\w/.-])flask --app", text)]
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
