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
from storefront.orders.book import order_of, orders, paid_order_ids_of_buyer, unconfirmed_orders
from storefront.orders.confirmation import confirm_later, confirmation_message, order_links_message, shipping_message
from storefront.sweep import every_sweep

log = logging.getLogger(__name__)

# A confirmation normally goes out within seconds; one still unsent after this is sent again.
RESEND_AFTER = timedelta(seconds=60)
LINKS_SENT = 20  # a buyer's latest paid orders, in one email asked for at /orders/find


@measured_job("send_order_confirmation")
def send_order_confirmation(order_id: str) -> str:
    """Email the order's confirmation, once it is paid; once."""
    return _mail_once(order_id, "paid_at", "confirmation_sent_at", confirmation_message)


@measured_job("send_shipping_notice")
def send_shipping_notice(order_id: str) -> str:
    """Tell the shopper their order is on its way, once it is marked shipped; once."""
    return _mail_once(order_id, "shipped_at", "shipping_notice_sent_at", shipping_message)


def _mail_once(order_id: str, due_column: str, sent_column: str, message_of) -> str:
    """Send ``message_of(order, sender)`` once the order's ``due_column`` is set, and record it in
    ``sent_column``: the order row stays locked from the check to the record, so a job run twice sends
    once. A MailError (server down, refused) propagates so that the job is retried."""
    order_uuid = uuid.UUID(order_id)
    with db.engine.begin() as conn:
        row = conn.execute(select(orders).where(orders.c.id == order_uuid).with_for_update()).first()
        if row is None or row._mapping[due_column] is None or not row.email:
            return "nothing_to_send"
        if row._mapping[sent_column] is not None:
            return "already_sent"
        mailer().send(message_of(order_of(conn, order_uuid), current_app.config["STOREFRONT"].mail_from))
        conn.execute(update(orders).where(orders.c.id == order_uuid).values({sent_column: utcnow()}))
    log.info("order %s: %s recorded", order_id, sent_column)
    return "sent"


@measured_job("send_order_links")
def send_order_links(order_id: str) -> str:
    """Email the links of this order and of the buyer's other paid orders to the address it was placed
    with (asked for at /orders/find with its reference). Sending twice sends the same links twice; a
    MailError propagates so that the job is retried."""
    with reading() as conn:
        order = order_of(conn, uuid.UUID(order_id))
        if order is None or order.row is None or not order.row.email:
            return "nothing_to_send"
        others = [order_of(conn, other) for other in paid_order_ids_of_buyer(conn, order.row.buyer_email, LINKS_SENT)
                  if other != order.id]
    found = [order, *(other for other in others if other is not None)]
    mailer().send(order_links_message(found, order.row.email, current_app.config["STOREFRONT"].mail_from))
    log.info("order %s: its links sent again (%d orders)", order_id, len(found))
    return "sent"


def resend_unconfirmed() -> int:
    """From the sweep: enqueue again the confirmations of paid orders that have not gone out."""
    with reading() as conn:
        order_ids = unconfirmed_orders(conn, utcnow() - RESEND_AFTER)
    for order_id in order_ids:
        confirm_later(order_id)
    return len(order_ids)


def init_app(app) -> None:
    """Orders' part of every sweep: confirmations of paid orders that did not go out, sent again."""
    every_sweep(app, "confirmationsResent", resend_unconfirmed)
