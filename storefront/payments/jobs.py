"""Payment jobs. Each takes plain data, re-reads state, is safe to run twice,
and raises on failure so that it is retried."""

import hashlib
import logging
from collections import Counter

from flask import current_app

from storefront import jobs
from storefront.events.bus import handles_payment_messages
from storefront.logs import request_id_var
from storefront.metrics import UNSEALED_MESSAGES, measured_job
from storefront.payments.draws import draw_due_draws, release_authorisations
from storefront.payments.messages import is_sealed
from storefront.payments.reconcile import reconcile_payments
from storefront.payments.settlement import settle_batch, settle_succeeded
from storefront.sweep import every_sweep

log = logging.getLogger(__name__)


def _refused(message) -> bool:
    """A message the webhook did not seal is not settled (payments/messages.py says why). Not
    retried either: no retry can make it true; a real payment is found by reconciliation."""
    if is_sealed(message):
        return False
    UNSEALED_MESSAGES.inc()
    event_id = message.get("eventId") if isinstance(message, dict) else None
    log.error("payment message %r is not sealed by this shop's webhook: refused, nothing settled", event_id)
    return True


@measured_job("complete_payment")
def complete_payment(message: dict) -> str:
    """A ``payment_intent.succeeded`` from the webhook: complete the hold or checkout, or refund it."""
    if _refused(message):
        return "refused"
    token = request_id_var.set(message.get("requestId"))  # the request that started it all, in our logs
    try:
        return settle_succeeded(message, "webhook")
    finally:
        request_id_var.reset(token)


@measured_job("complete_payments")
def complete_payments(messages: list[dict]) -> dict:
    """A batch of ``payment_intent.succeeded`` events, as the consumer read them from Kafka.

    One job shares RQ's own cost (fetching, registries, the result) among every event
    the consumer polled at once, and one transaction commits them all; each event is
    still settled exactly once, by the same rules. If the batch cannot be settled as
    one (a deadlock, a bad event), each event is settled on its own; one that still
    fails (Stripe unreachable for a refund, say) becomes a job of its own, retried
    with backoff, and does not hold back the others.
    """
    messages = [message for message in messages if not _refused(message)]
    try:
        settled = settle_batch(messages, "webhook") if messages else []
    except Exception:
        log.exception("a batch of %d payment events failed as one; settling each alone", len(messages))
        settled = [(message, _settle_alone(message)) for message in messages]
    outcomes = dict(Counter(outcome for _, outcome in settled))
    log.info("settled a batch of %d payment events: %s", len(messages), outcomes)
    return outcomes


def _settle_alone(message: dict) -> str:
    token = request_id_var.set(message.get("requestId"))
    try:
        return settle_succeeded(message, "webhook")
    except Exception:
        log.exception("payment event %s failed; retried on its own", message.get("eventId"))
        enqueue_completion(message)
        return "retried_alone"
    finally:
        request_id_var.reset(token)


def enqueue_completion(message: dict) -> None:
    """One event handed over on its own (the in-process bus): its completion job, by its id."""
    jobs.enqueue("storefront.payments.jobs.complete_payment", message, job_id=f"payment-{message['eventId']}")


def enqueue_completions(messages: list[dict]) -> None:
    """The events of one consumer poll: one completion job.

    Its id is derived from the events it carries, so the same batch handed over again
    (a consumer killed before committing) is the same job; a batch cut differently is
    another job, whose events are then settled as duplicates, changing nothing.
    """
    batch = hashlib.sha256(",".join(sorted(m["eventId"] for m in messages)).encode()).hexdigest()[:32]
    jobs.enqueue("storefront.payments.jobs.complete_payments", messages, job_id=f"payments-{batch}")


def init_app(app) -> None:
    """Payments' ways in from below: the bus hands succeeded payments to the completion jobs; and its
    part of every sweep: the intents of holds lapsing now, or about to, asked about; the draws closed
    with work left, drawn; the authorisations of entries that did not win, released."""
    handles_payment_messages(app, enqueue_completion, enqueue_completions)
    every_sweep(app, "intents", lambda: reconcile_payments(
        lookahead_seconds=current_app.config["STOREFRONT"].sweep_interval_seconds))
    every_sweep(app, "draws", draw_due_draws)
    every_sweep(app, "authorisations", release_authorisations)
