"""Advisories published against the locked versions: pip-audit, and what it cannot reach here.

    python scripts/audit.py requirements/app.lock requirements/dev.lock

pip-audit asks the package index for each pinned version's advisories (PyPI's JSON API,
``/pypi/<name>/<version>/json``). Where only the project's own page is served (some mirrors,
and these machines' package proxy), pip-audit finds none of them and says so per package,
yet exits 0: a green run that checked nothing. So its JSON is read here, and every package it
could not look up is looked up again on the project's page (``/pypi/<name>/json``), whose
advisories are those of the latest release: exact for a pin that is the latest release, and
reported as not audited otherwise. Exit status 1 when any pinned version has an advisory, and 2
when nothing could be audited at all (no index answered): a run that checked nothing is not green.
"""

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

INDEX = "https://pypi.org/pypi"
TIMEOUT_SECONDS = 20


def pip_audit(locks: list[str]) -> dict:
    command = [str(Path(sys.executable).with_name("pip-audit")), "--progress-spinner", "off", "--require-hashes",
               "--disable-pip", "--format", "json"]
    for lock in locks:
        command += ["-r", lock]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode not in (0, 1):  # 1: vulnerabilities found, reported below
        sys.exit(f"pip-audit failed ({finished.returncode}): {finished.stderr.strip()[-2000:]}")
    return json.loads(finished.stdout)


def normalised(name: str) -> str:
    """A package name as the index compares names (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(locks: list[str]) -> dict[str, str]:
    """Every ``name==version`` of the lock files, by normalised name (pip-audit's skips name no version)."""
    pins = {}
    for lock in locks:
        for name, version in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", Path(lock).read_text(), re.M):
            pins[normalised(name)] = version
    return pins


def project_page(name: str) -> dict:
    with urllib.request.urlopen(f"{INDEX}/{name}/json", timeout=TIMEOUT_SECONDS) as answer:
        return json.load(answer)


def main(locks: list[str]) -> int:
    report, pins = pip_audit(locks), pinned(locks)
    findings, unaudited, by_pip_audit, by_project_page = [], [], 0, 0
    for dependency in report["dependencies"]:
        name = dependency["name"]
        version = dependency.get("version") or pins.get(normalised(name))
        if "skip_reason" not in dependency:
            by_pip_audit += 1
            findings += [(name, version, vuln["id"], vuln.get("fix_versions", [])) for vuln in dependency["vulns"]]
            continue
        try:
            page = project_page(name)
        except OSError as error:
            unaudited.append(f"{name} {version} (the project page did not answer: {type(error).__name__})")
            continue
        latest = page["info"]["version"]
        if latest != version:
            unaudited.append(f"{name} {version} (latest is {latest}; this index answers for the latest only)")
            continue
        by_project_page += 1
        findings += [(name, version, vuln["id"], vuln.get("fixed_in", [])) for vuln in page.get("vulnerabilities", [])
                     if not vuln.get("withdrawn")]

    total = len(report["dependencies"])
    print(f"audited {by_pip_audit + by_project_page} of {total} locked packages "
          f"({by_pip_audit} by pip-audit, {by_project_page} on their project page)")
    for line in unaudited:
        print(f"  not audited here: {line}")
    if total and by_pip_audit + by_project_page == 0:
        print("nothing could be audited: no index answered for any locked package")
        return 2
    for name, version, advisory, fixed in findings:
        print(f"  ADVISORY {advisory}: {name} {version} (fixed in {', '.join(fixed) or 'no release yet'})")
    if findings:
        print(f"{len(findings)} advisories against the locked versions: update the locks (README, Dependencies)")
        return 1
    print("no advisories against the audited versions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["requirements/app.lock", "requirements/dev.lock"]))
