"""The record of payment events: what arrived and what came of it."""

from sqlalchemy import Connection, func
from sqlalchemy.dialects import postgresql, sqlite

from storefront.clock import utcnow
from storefront.payments.models import PaymentEvent

payment_events = PaymentEvent.__table__


def _upsert(dialect):
    """A redelivery updates its event's row; a refund id, once written, is never lost."""
    statement = dialect.insert(payment_events)
    return statement.on_conflict_do_update(
        index_elements=[payment_events.c.id],
        set_={"outcome": statement.excluded.outcome, "detail": statement.excluded.detail,
              "updated_at": statement.excluded.updated_at,
              "refund_id": func.coalesce(statement.excluded.refund_id, payment_events.c.refund_id)},
    )


_UPSERT = {"postgresql": _upsert(postgresql), "sqlite": _upsert(sqlite)}


def _row(event_id, event_type, outcome, payment_intent_id, reservation_id, detail, trigger, refund_id, now) -> dict:
    return {"id": event_id, "type": event_type, "payment_intent_id": payment_intent_id,
            "reservation_id": str(reservation_id) if reservation_id else None, "outcome": outcome,
            "detail": detail, "trigger": trigger, "refund_id": refund_id, "received_at": now, "updated_at": now}


def record_event(
    conn: Connection,
    event_id: str,
    event_type: str,
    outcome: str,
    *,
    payment_intent_id: str | None = None,
    reservation_id=None,
    detail: str | None = None,
    trigger: str = "webhook",
    refund_id: str | None = None,
) -> None:
    """Write down an event's outcome, in the caller's transaction (with whatever it decided)."""
    conn.execute(_UPSERT[conn.dialect.name], _row(event_id, event_type, outcome, payment_intent_id,
                                                  reservation_id, detail, trigger, refund_id, utcnow()))


def record_events(conn: Connection, records: list[dict], trigger: str) -> None:
    """Write down many events' outcomes in one statement (a batch); the caller commits.

    Each record: ``eventId``, ``type``, ``outcome``, ``paymentIntentId``, ``subjectId``, ``detail``.
    """
    now = utcnow()
    # One row per event: a batch may carry an event twice, and a row cannot be upserted twice at once.
    rows = [_row(r["eventId"], r["type"], r["outcome"], r["paymentIntentId"], r["subjectId"], r["detail"],
                 trigger, None, now) for r in {record["eventId"]: record for record in records}.values()]
    if rows:
        conn.execute(_UPSERT[conn.dialect.name], rows)
