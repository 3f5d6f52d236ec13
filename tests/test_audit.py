"""scripts/audit.py: what it says and its exit status, from pip-audit's report and the index's pages
(both stood in for by recorded answers: the index is not this test's subject, and is not always here)."""

import pytest

from scripts import audit


def dependency(name, version, skipped=False, vulns=()):
    found = {"name": name, "version": version}
    if skipped:
        found["skip_reason"] = "Dependency not found on PyPI"
    else:
        found["vulns"] = list(vulns)
    return found


@pytest.fixture
def lock(tmp_path):
    path = tmp_path / "app.lock"
    path.write_text("flask==3.1.3 \\\n    --hash=sha256:00\nrq==3.0.0 \\\n    --hash=sha256:00\n")
    return str(path)


def run(monkeypatch, capsys, lock, dependencies, pages):
    monkeypatch.setattr(audit, "pip_audit", lambda locks: {"dependencies": dependencies})

    def page(name):
        if name not in pages:
            raise OSError("no answer")
        return pages[name]

    monkeypatch.setattr(audit, "project_page", page)
    status = audit.main([lock])
    return status, capsys.readouterr().out


def test_a_clean_audit_passes(monkeypatch, capsys, lock):
    status, said = run(monkeypatch, capsys, lock, [dependency("flask", "3.1.3"), dependency("rq", "3.0.0")], {})
    assert status == 0 and "audited 2 of 2" in said


def test_an_advisory_on_a_project_page_fails(monkeypatch, capsys, lock):
    pages = {"rq": {"info": {"version": "3.0.0"}, "vulnerabilities": [{"id": "GHSA-x", "fixed_in": ["3.0.1"]}]}}
    status, said = run(monkeypatch, capsys, lock,
                       [dependency("flask", "3.1.3"), dependency("rq", "3.0.0", skipped=True)], pages)
    assert status == 1 and "ADVISORY GHSA-x: rq 3.0.0" in said


def test_an_audit_that_reached_nothing_is_not_green(monkeypatch, capsys, lock):
    status, said = run(monkeypatch, capsys, lock,
                       [dependency("flask", "3.1.3", skipped=True), dependency("rq", "3.0.0", skipped=True)], {})
    assert status == 2 and "audited 0 of 2" in said and "nothing could be audited" in said
