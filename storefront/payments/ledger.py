"""The record of payment events: what arrived and what came of it."""

from sqlalchemy import Connection, func
from sqlalchemy.dialects import postgresql, sqlite

from storefront.clock import utcnow
from storefront.payments.models import PaymentEvent

payment_events = PaymentEvent.__table__


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
    commit: bool = True,
) -> None:
    """Write down an event's outcome; a redelivery updates the same row. Commits, unless
    told not to (a batch commits once, with its settlements)."""
    now = utcnow()
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[conn.dialect.name]
    statement = dialect.insert(payment_events).values(
        id=event_id,
        type=event_type,
        payment_intent_id=payment_intent_id,
        reservation_id=str(reservation_id) if reservation_id else None,
        outcome=outcome,
        detail=detail,
        trigger=trigger,
        refund_id=refund_id,
        received_at=now,
        updated_at=now,
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[payment_events.c.id],
            set_={"outcome": statement.excluded.outcome, "detail": statement.excluded.detail, "updated_at": now,
                  "refund_id": func.coalesce(statement.excluded.refund_id, payment_events.c.refund_id)},
        )
    )
    if commit:
        conn.commit()


def record_events(conn: Connection, records: list[dict], trigger: str) -> None:
    """Write down many events' outcomes in one statement (a batch); the caller commits.

    Each record: ``eventId``, ``type``, ``outcome``, ``paymentIntentId``, ``subjectId``, ``detail``.
    """
    if not records:
        return
    now = utcnow()
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[conn.dialect.name]
    statement = dialect.insert(payment_events)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[payment_events.c.id],
        set_={"outcome": statement.excluded.outcome, "detail": statement.excluded.detail, "updated_at": now},
    ), [{"id": r["eventId"], "type": r["type"], "payment_intent_id": r["paymentIntentId"],
         "reservation_id": str(r["subjectId"]) if r["subjectId"] else None, "outcome": r["outcome"],
         "detail": r["detail"], "trigger": trigger, "refund_id": None, "received_at": now, "updated_at": now}
        for r in {record["eventId"]: record for record in records}.values()])
