"""The email a shopper gets when their order is paid (or, if its stock was gone, refunded).

Sent by a job (``orders/jobs.py``), never in the payment's own path: the payment
settles and commits first, then the job is enqueued; if that fails, or the mail
server is down, the sweep enqueues it again until it has gone out once.
"""

import logging
import time
import uuid
from email.message import EmailMessage
from email.utils import parseaddr

from storefront import jobs
from storefront.formatting import money, shop_datetime
from storefront.orders.book import DEMO_LABEL, OrderSummary
from storefront.orders.links import order_link

log = logging.getLogger(__name__)


def _addressed(order: OrderSummary, sender: str, subject: str, kind: str = "") -> EmailMessage:
    """An email about ``order`` to its shopper: "demo" said in the subject of a demo order, and the same
    Message-ID however often it is sent (a second copy is recognisable as one)."""
    message = EmailMessage()
    message["From"], message["To"] = sender, order.delivery.email
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<order-{order.id}{kind}@{domain}>"
    message["Subject"] = f"Order {order.reference}: {subject}" + (f" ({DEMO_LABEL})" if order.demo else "")
    return message


def confirmation_message(order: OrderSummary, sender: str) -> EmailMessage:
    delivery = order.delivery
    refunded_only = order.status == "refunded"
    message = _addressed(order, sender, "your payment was refunded" if refunded_only else "thank you, it is paid")
    lines = [
        f"Hello {delivery.name}," if delivery.name else "Hello,",
        "",
        (f"Your payment for order {order.reference} was refunded in full: {order.refund_reason}."
         if refunded_only else f"Thank you: order {order.reference}, placed {shop_datetime(order.created_at)}, is paid."),
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
    lines += ["", f"Your reference: {order.reference}.", *where_to_see(order), ""]
    message.set_content("\n".join(lines))
    return message


def shipping_message(order: OrderSummary, sender: str) -> EmailMessage:
    """The order is on its way: its lines, the tracking reference (a link when the owner gave one), and
    where to see the order."""
    delivery = order.delivery
    message = _addressed(order, sender, "on its way", "-shipped")
    lines = [f"Hello {delivery.name}," if delivery.name else "Hello,", "",
             f"Order {order.reference} left us {shop_datetime(order.row.shipped_at)}, to:"
             if order.row.shipped_at else f"Order {order.reference} has left us, to:", *(f"  {part}" for part in delivery.lines()), ""]
    if order.demo:
        lines += [f"This is a demo order ({DEMO_LABEL}): nothing was charged, and nothing will arrive.", ""]
    for line in order.lines:
        if line.status != "REFUNDED":
            lines.append(f"  {line.quantity} x {line.name}")
    tracking = order.row.tracking_reference
    if tracking:
        is_link = tracking.startswith(("https://", "http://"))
        lines += ["", "Follow it with the carrier:" if is_link else f"The carrier's tracking reference: {tracking}"]
        if is_link:
            lines.append(f"  {tracking}")
    lines += ["", *where_to_see(order), ""]
    message.set_content("\n".join(lines))
    return message


def where_to_see(order: OrderSummary) -> list[str]:
    """Where the shopper finds the order again: its link (any browser), or the browser they bought with."""
    link = order_link(order.row.shop_url if order.row is not None else None, order.id)
    if link:
        return ["Your order, in any browser (keep this link to yourself):", f"  {link}"]
    return ["Your orders are listed under Orders in the shop, in the browser you bought with."]


def order_links_message(found: list[OrderSummary], to: str, sender: str) -> EmailMessage:
    """The links to a shopper's orders, asked for again at /orders/find."""
    message = EmailMessage()
    message["From"], message["To"] = sender, to
    message["Subject"] = "Your orders, as you asked"
    lines = ["Hello,", "", "Someone (we hope you) asked the shop for the links to your orders:", ""]
    for order in found:
        lines += [f"Order {order.reference}, {money(order.amount, order.currency)}"
                  f"{f' ({DEMO_LABEL})' if order.demo else ''}:", *where_to_see(order), ""]
    lines += ["If it was not you, nothing has changed: the links went to this address only.", ""]
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


def send_links_later(order_id: uuid.UUID) -> None:
    """Enqueue the email with the links to the buyer's orders (asked for at /orders/find with this
    order's reference); at most one a minute an order."""
    minute = int(time.time() // 60)
    jobs.enqueue("storefront.orders.jobs.send_order_links", str(order_id), job_id=f"order-links-{order_id}-{minute}")


def tell_shipped_later(order_id: uuid.UUID) -> None:
    """Enqueue the shipping email. Never raises: the owner's click is done; a failure is logged."""
    try:
        jobs.enqueue("storefront.orders.jobs.send_shipping_notice", str(order_id), job_id=f"order-shipped-{order_id}")
    except Exception as error:
        log.warning("order %s: shipping email not sent (%s)", order_id, type(error).__name__)
