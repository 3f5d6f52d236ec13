"""A job for the worker's tests: it leaves a file behind when it runs, so a test can tell."""

from pathlib import Path


def leave_a_mark(path: str) -> str:
    Path(path).write_text("ran")
    return "ran"
