"""Order jobs. Each takes ids, re-reads state, is safe to run twice, and raises to be retried."""

import logging
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from storefront.clock import utcnow
from storefront.database import reading
from storefront.extensions import db
from storefront.mail import mailer
from storefront.metrics import measured_job
from storefront.orders.book import order_of, orders, unconfirmed_orders
from storefront.orders.confirmation import confirm_later, confirmation_message

log = logging.getLogger(__name__)

# A confirmation normally goes out within seconds; one still unsent after this is sent again.
RESEND_AFTER = timedelta(seconds=60)


@measured_job("send_order_confirmation")
def send_order_confirmation(order_id: str) -> str:
    """Email the order's confirmation, once: the order row stays locked from the check to the record.

    A MailError (server down, refused) propagates so that the job is retried.
    """
    order_uuid = uuid.UUID(order_id)
    with db.engine.begin() as conn:
        row = conn.execute(select(orders).where(orders.c.id == order_uuid).with_for_update()).first()
        if row is None or row.paid_at is None or not row.email:
            return "nothing_to_send"
        if row.confirmation_sent_at is not None:
            return "already_sent"
        message = confirmation_message(order_of(conn, order_uuid), current_app.config["STOREFRONT"].mail_from)
        mailer().send(message)
        conn.execute(update(orders).where(orders.c.id == order_uuid).values(confirmation_sent_at=utcnow()))
    log.info("order %s: confirmation sent", order_id)
    return "sent"


def resend_unconfirmed() -> int:
    """From the sweep: enqueue again the confirmations of paid orders that have not gone out."""
    with reading() as conn:
        order_ids = unconfirmed_orders(conn, utcnow() - RESEND_AFTER)
    for order_id in order_ids:
        confirm_later(order_id)
    return len(order_ids)
