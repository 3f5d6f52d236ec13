"""The background side: ``python worker.py [all|consumer|jobs|cron]``.

- consumer: reads payment events from Kafka and hands each to RQ (needs
  KAFKA_BOOTSTRAP_SERVERS);
- jobs: an RQ worker that runs the completion jobs and the sweep (needs REDIS_URL);
- cron: enqueues the sweep every SWEEP_INTERVAL_SECONDS, once per interval however
  many run (needs REDIS_URL).

``all`` (the default) runs every role the settings allow in this one process:
the RQ worker in the main thread, where it owns SIGTERM and SIGINT (a warm
shutdown: the job in hand finishes), the consumer and the scheduler beside it.
To scale out, run the roles as separate processes, as many as you like: the
consumers share partitions through their group, RQ workers share the queue, and
sweeps are safe to run at once.

Embedded mode (no Redis, no Kafka) has no queue to work: events and jobs run in
the web process; ``all`` then runs only the sweep, every interval.
"""

import argparse
import logging
import signal
import sys
import threading
import time

from redis.exceptions import RedisError

from storefront import create_app
from storefront.extensions import db
from storefront.logs import configure_logging

log = logging.getLogger("storefront.worker")

ROLES = ("all", "consumer", "jobs", "cron")
# How often the worker looks for jobs abandoned by a killed worker (and retries them),
# and how long it blocks on an empty queue before it looks again.
MAINTENANCE_INTERVAL_SECONDS = 10
WORKER_TTL_SECONDS = 30
# How long past its timeout a started job counts as abandoned (RQ allows a minute).
ABANDONED_AFTER_TIMEOUT_SECONDS = 10


def run_consumer(app, stopping: threading.Event | None = None):
    from storefront.events.bus import handle_payment_messages
    from storefront.events.kafka import PaymentConsumer, ensure_topic

    settings = app.config["STOREFRONT"]

    def handle(messages: list[dict]) -> None:
        with app.app_context():
            handle_payment_messages(messages)

    ensure_topic(settings.kafka_bootstrap_servers, settings.kafka_payments_topic)
    consumer = PaymentConsumer(settings.kafka_bootstrap_servers, settings.kafka_payments_topic, handle)
    if stopping is not None:
        threading.Thread(target=lambda: (stopping.wait(), consumer.stop()), daemon=True).start()
    return consumer


def run_sweep_schedule(app, stopping: threading.Event) -> None:
    """Enqueue the sweep at the start of every SWEEP_INTERVAL_SECONDS, through the shop's own queue
    (JSON, like every job). The job's id names its interval, so any number of cron roles enqueue
    it once per interval, and a restart in the middle of one does not sweep twice.

    Written here rather than taken from RQ's CronScheduler, which enqueues through a queue of
    its own with RQ's default serializer (pickle), which the worker refuses."""
    from storefront import jobs

    interval = app.config["STOREFRONT"].sweep_interval_seconds
    while not stopping.is_set():
        slot = int(time.time() // interval)
        with app.app_context():
            try:
                jobs.enqueue("storefront.sweep.sweep", job_id=f"sweep-{slot}")
            except RedisError as error:
                log.warning("sweep not enqueued (%s); trying again next interval", type(error).__name__)
        stopping.wait((slot + 1) * interval - time.time())


def run_jobs_worker(app) -> None:
    from rq import Queue, SimpleWorker

    from storefront.jobs import job_runner

    class JobsWorker(SimpleWorker):
        """RQ's SimpleWorker, whose started jobs are given up for abandoned 10 s past their timeout,
        not 60: a job runs in this very process under its timeout's alarm, so it cannot outlive it,
        and a job cut off by a killed worker is retried 50 s sooner."""

        def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
            ttl = super().get_heartbeat_ttl(job, working_time)
            return ttl - 60 + ABANDONED_AFTER_TIMEOUT_SECONDS if job.timeout and job.timeout > 0 else ttl

        def unsubscribe(self) -> None:
            """RQ's, in an order that cannot hang the shutdown. RQ sends UNSUBSCRIBE, then stops its pubsub
            thread, and redis-py's stop() waits for that thread, which reads with a 60 s timeout: when the
            thread had taken UNSUBSCRIBE's reply before it was told to stop, it went back to a 60 s read, and
            a SIGTERM'd worker outlived its 30 s grace (seen twice on a loaded machine). Told to stop first,
            the reply ends its read and it closes its connection itself."""
            if not self.pubsub_thread:
                return
            self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
            self.pubsub_thread.stop(timeout=0)
            self.pubsub.unsubscribe()
            self.pubsub_thread.join(timeout=5)
            if self.pubsub_thread.is_alive():
                self.pubsub.close()

    runner = job_runner()
    connection = runner.worker_connection()
    # SimpleWorker runs each job in this process, inside the app context pushed in main(). Jobs are
    # read as JSON only: a pickled one fails to load and is never run (storefront/jobs.py says why).
    worker = JobsWorker([Queue(runner.queue.name, connection=connection, serializer=runner.serializer)],
                          connection=connection, serializer=runner.serializer,
                          maintenance_interval=MAINTENANCE_INTERVAL_SECONDS, worker_ttl=WORKER_TTL_SECONDS)
    worker.work(with_scheduler=True, logging_level="INFO")


def run_embedded_sweep(app) -> None:
    from storefront.sweep import sweep

    interval = app.config["STOREFRONT"].sweep_interval_seconds
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("embedded mode: events and jobs run in the web process; sweeping every %ss", interval)
    while not stop.wait(interval):
        sweep()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", default="all", choices=ROLES)
    role = parser.parse_args(argv).role
    configure_logging()

    app = create_app()
    app.app_context().push()
    settings = app.config["STOREFRONT"]
    kafka, redis = bool(settings.kafka_bootstrap_servers), bool(settings.redis_url)

    needs = {"consumer": ("KAFKA_BOOTSTRAP_SERVERS", kafka), "jobs": ("REDIS_URL", redis), "cron": ("REDIS_URL", redis)}
    if role in needs and not needs[role][1]:
        print(f"worker.py {role}: {needs[role][0]} is not set", file=sys.stderr)
        return 2

    if role == "consumer":
        consumer = run_consumer(app)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: consumer.stop())
        consumer.run()
    elif role == "jobs":
        run_jobs_worker(app)
    elif role == "cron":
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        run_sweep_schedule(app, stopping)
    elif not redis:
        if kafka:
            # Kafka without Redis: the consumer runs each job itself, then commits.
            consumer = run_consumer(app)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: consumer.stop())
            consumer.run()
        else:
            run_embedded_sweep(app)
    else:
        stopping = threading.Event()
        threads = []
        if kafka:
            consumer = run_consumer(app, stopping)
            threads.append(threading.Thread(target=consumer.run, name="consumer"))
        threads.append(threading.Thread(target=run_sweep_schedule, args=(app, stopping), name="cron", daemon=True))
        for thread in threads:
            thread.start()
        try:
            run_jobs_worker(app)  # returns after SIGTERM, once the job in hand is done
        finally:
            stopping.set()
            for thread in threads:
                if not thread.daemon:
                    thread.join(timeout=30)
    db.engine.dispose()
    log.info("worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
