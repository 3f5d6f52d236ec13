"""Queue wiring only: where background jobs run.

Jobs are plain functions named by dotted path and given ids, never objects.
In embedded mode (no ``REDIS_URL``) a job runs at once, in the calling process,
inside its app context; its exceptions reach the caller.
"""

from flask import Flask, current_app
from werkzeug.utils import import_string


class InProcessJobs:
    def enqueue(self, function_path: str, *args, job_id: str):
        return import_string(function_path)(*args)


def enqueue(function_path: str, *args, job_id: str):
    """Run ``function_path(*args)`` as a background job, once per ``job_id``."""
    return current_app.extensions["storefront.jobs"].enqueue(function_path, *args, job_id=job_id)


def init_app(app: Flask) -> None:
    app.extensions["storefront.jobs"] = InProcessJobs()
