"""Queue wiring only: where background jobs run.

Jobs are plain functions named by dotted path and given ids, never objects.
With ``REDIS_URL`` they go through RQ: enqueued once per id (a second enqueue of
the same id is a no-op), retried with backoff, and kept in RQ's failed registry
with their error when retries run out. Without it (embedded mode) a job runs at
once, in the calling process, inside its app context, and its exceptions reach
the caller.

Jobs travel as JSON (RQ's JSONSerializer), never pickled: a pickled job runs whatever
code its bytes name when it is read, so write access to Redis would be code execution
in the worker. A job that is not JSON is refused by the worker (its data does not load)
and never runs.
"""

import logging

from flask import Flask, current_app
from werkzeug.utils import import_string

log = logging.getLogger(__name__)

QUEUE_NAME = "storefront"
REDIS_TIMEOUT_SECONDS = 5
RETRY_INTERVALS = [1, 5, 30, 120, 600]  # seconds; then the failed registry
# Long enough for a refund through Stripe (10 s, two retries); short, because a job
# whose worker was killed is retried only this long (plus a minute) after it started.
JOB_TIMEOUT_SECONDS = 45
RESULT_TTL_SECONDS = 24 * 3600
FAILURE_TTL_SECONDS = 30 * 24 * 3600


class InProcessJobs:
    def enqueue(self, function_path: str, *args, job_id: str):
        return import_string(function_path)(*args)


class RedisJobs:
    def __init__(self, redis_url: str):
        from redis import Redis
        from rq import Queue
        from rq.serializers import JSONSerializer

        self.redis_url = redis_url
        self.serializer = JSONSerializer
        self.connection = Redis.from_url(
            redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self.queue = Queue(QUEUE_NAME, connection=self.connection, serializer=self.serializer)

    def failed_registry(self):
        from rq.registry import FailedJobRegistry

        return FailedJobRegistry(queue=self.queue)

    def fetch_many(self, job_ids: list[str]) -> list:
        from rq.job import Job

        return Job.fetch_many(job_ids, connection=self.connection, serializer=self.serializer)

    def worker_connection(self):
        """For an RQ worker: no read timeout, since it blocks on the queue for minutes by design."""
        from redis import Redis

        return Redis.from_url(self.redis_url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, health_check_interval=30)

    def enqueue(self, function_path: str, *args, job_id: str):
        from rq import Retry
        from rq.exceptions import DuplicateJobError

        try:
            return self.queue.enqueue(
                function_path,
                *args,
                job_id=job_id,
                unique=True,
                retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                job_timeout=JOB_TIMEOUT_SECONDS,
                result_ttl=RESULT_TTL_SECONDS,
                failure_ttl=FAILURE_TTL_SECONDS,
            )
        except DuplicateJobError:
            log.info("job %s is already enqueued or done", job_id)
            return None


def enqueue(function_path: str, *args, job_id: str):
    """Run ``function_path(*args)`` as a background job, once per ``job_id``."""
    return current_app.extensions["storefront.jobs"].enqueue(function_path, *args, job_id=job_id)


def job_runner():
    return current_app.extensions["storefront.jobs"]


def init_app(app: Flask) -> None:
    redis_url = app.config["STOREFRONT"].redis_url
    app.extensions["storefront.jobs"] = RedisJobs(redis_url) if redis_url else InProcessJobs()
