"""The email a shopper gets when their order is paid (or, if its stock was gone, refunded).

Sent by a job (``orders/jobs.py``), never in the payment's own path: the payment
settles and commits first, then the job is enqueued; if that fails, or the mail
server is down, the sweep enqueues it again until it has gone out once.
"""

import logging
import uuid
from email.message import EmailMessage
from email.utils import parseaddr

from storefront import jobs
from storefront.formatting import money
from storefront.orders.book import DEMO_LABEL, OrderSummary

log = logging.getLogger(__name__)


def confirmation_message(order: OrderSummary, sender: str) -> EmailMessage:
    delivery = order.delivery
    message = EmailMessage()
    message["From"] = sender
    message["To"] = delivery.email
    # The same id however often it is sent: a second copy is recognisable as one.
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<order-{order.id}@{domain}>"
    refunded_only = order.status == "refunded"
    message["Subject"] = (f"Order {order.reference}: your payment was refunded" if refunded_only
                          else f"Order {order.reference}: thank you, it is paid")
    if order.demo:
        message.replace_header("Subject", f"{message['Subject']} ({DEMO_LABEL})")
    lines = [
        f"Hello {delivery.name}," if delivery.name else "Hello,",
        "",
        (f"Your payment for order {order.reference} was refunded in full: {order.refund_reason}."
         if refunded_only else f"Thank you: order {order.reference} is paid."),
        "",
    ]
    if order.demo:
        lines[-1:-1] = [f"This is a demo order ({DEMO_LABEL}): the shop's demo payment gateway took it, "
                        "and no card was charged."]
    for line in order.lines:
        note = " (refunded: sold out before your payment arrived)" if line.status == "REFUNDED" else ""
        lines.append(f"  {line.quantity} x {line.name}  {money(line.amount, line.currency)}{note}")
    lines.append(f"  Total {money(order.amount, order.currency)}")
    if order.refunded_amount and not refunded_only:
        lines.append(f"  Refunded {money(order.refunded_amount, order.currency)}")
    if not refunded_only:
        lines += ["", "We will send it to:", *(f"  {part}" for part in delivery.lines())]
    lines += ["", f"Your reference: {order.reference}. Your orders are listed under Orders in the shop,",
              "in the browser you bought with.", ""]
    message.set_content("\n".join(lines))
    return message


def confirm_later(order_id: uuid.UUID) -> None:
    """Enqueue the order's confirmation. Never raises: the sweep tries again if this fails."""
    try:
        jobs.enqueue("storefront.orders.jobs.send_order_confirmation", str(order_id),
                     job_id=f"order-confirmation-{order_id}")
    except Exception as error:
        log.warning("order %s: confirmation not sent yet (%s); the sweep will try again", order_id,
                    type(error).__name__)
