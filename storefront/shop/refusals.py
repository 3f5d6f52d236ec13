"""Every refusal the shop gives a shopper, in one table: the domain's exception (plain data, no API
field names and no message text) → the answer's status, code, message and fields, the same whichever
way in met it (a hold, a checkout, a cart line, a place in a line). pretix keeps its refusal messages
in one table too; docs/api.md lists them for the reader of the API.

``refusal(error)`` gives the ApiError to raise; ``lines=True`` for a checkout, whose answer names each
line (``items``) where a single hold's names its one product.
"""

from collections.abc import Callable

from storefront.cart import checkout as carts
from storefront.clock import isoformat_z
from storefront.errors import ApiError, not_found
from storefront.inventory import draw, grants, queue
from storefront.payments.intents import DeliveryPastBuyerLimit

HOLD_LIMIT_MESSAGES = {
    "visitor": "You already hold {held} units; one shopper may hold {limit} at once.",
    "address": "This address already holds {held} units; one address may hold {limit} at once.",
    "pass": "One turn in the line takes at most {limit} unit(s) of this drop.",
}


def _not_on_sale(waiting: grants.NotOnSale, lines: bool) -> ApiError:
    if lines:
        return ApiError(409, "not_on_sale", "Some lines are not on sale yet; nothing was held.",
                        items=[{"productId": product_id, "startsAt": isoformat_z(starts_at)}
                               for product_id, starts_at in waiting.lines])
    return ApiError(409, "not_on_sale", f"On sale from {isoformat_z(waiting.starts_at)}.",
                    startsAt=isoformat_z(waiting.starts_at))


def _out_of_stock(short: grants.OutOfStock, lines: bool) -> ApiError:
    if lines:
        return ApiError(409, "out_of_stock", "Some lines are short; nothing was held.",
                        items=[{"productId": product_id, "available": available} for product_id, available in short.lines])
    return ApiError(409, "out_of_stock", f"Only {short.available} available.", available=short.available)


def _hold_limit(limit: grants.HoldLimit, lines: bool) -> ApiError:
    message = HOLD_LIMIT_MESSAGES[limit.per].format(held=limit.held, limit=limit.limit)
    return ApiError(409, "hold_limit", message, limit=limit.limit, held=limit.held, per=limit.per)


def _buyer_limit(limit: grants.BuyerLimit, lines: bool) -> ApiError:
    return ApiError(409, "buyer_limit", f"One buyer may have {limit.limit} of this product; you have {limit.held}.",
                    productId=limit.product_id, limit=limit.limit, held=limit.held)


def _past_buyer_limit_at_delivery(refused: DeliveryPastBuyerLimit, lines: bool) -> ApiError:
    past = refused.past
    return ApiError(409, "buyer_limit", f"One buyer may have {past.limit} of this product, and this {past.field} has "
                    f"{past.held} already: nothing was charged.", field=past.field, limit=past.limit, held=past.held,
                    productId=past.family)


def _not_admitted(refused: queue.NotAdmitted, lines: bool) -> ApiError:
    """A hold or a checkout on a queued product without a live pass."""
    if refused.position is None:
        message = "This drop lets its buyers in through a line: join it on the product's page."
    else:
        message = f"Your place is {refused.position}; the line is let in through {refused.admitted_through}."
    return ApiError(409, "not_admitted", message, productId=refused.queue_of, position=refused.position,
                    admittedThrough=refused.admitted_through)


def _queue_not_open(closed: queue.QueueNotOpen, lines: bool) -> ApiError:
    return ApiError(409, "queue_not_open", f"The line opens at {isoformat_z(closed.opens_at)}.",
                    opensAt=isoformat_z(closed.opens_at))


def _too_many_entries(many: queue.TooManyEntries, lines: bool) -> ApiError:
    return ApiError(429, "too_many_entries", f"This address has {many.limit} places in this line already.",
                    limit=many.limit)


def _already_entered(entered: draw.AlreadyEntered, lines: bool) -> ApiError:
    by = {"owner": "this browser", "email": "this email", "address": "this delivery address", "card": "this card"}
    return ApiError(409, "already_entered", f"One entry per buyer: {by[entered.field]} has entered this draw already.",
                    field=entered.field, entryId=str(entered.entry_id) if entered.entry_id else None)


REFUSALS: dict[type[Exception], Callable[[Exception, bool], ApiError]] = {
    grants.ProductNotFound: lambda error, lines: not_found("No such product."),
    grants.NotOnSale: _not_on_sale,
    grants.OutOfStock: _out_of_stock,
    grants.HoldLimit: _hold_limit,
    grants.BuyerLimit: _buyer_limit,
    DeliveryPastBuyerLimit: _past_buyer_limit_at_delivery,
    grants.Paused: lambda error, lines: ApiError(409, "paused", "This sale is paused for a moment; try again shortly."),
    grants.DrawOnly: lambda error, lines: ApiError(
        409, "draw_only", "This drop is sold by a draw: enter it on the product's page.", productIds=error.product_ids),
    queue.NotAdmitted: _not_admitted,
    queue.NoQueue: lambda error, lines: ApiError(
        409, "no_queue", "This product has no waiting room: Buy takes its stock directly."),
    queue.NotAQueuedProduct: lambda error, lines: not_found("No such product."),
    queue.QueueNotOpen: _queue_not_open,
    queue.QueueSoldOut: lambda error, lines: ApiError(409, "out_of_stock", "Sold out: nothing left to wait for.",
                                                      available=0),
    queue.QueueClosed: lambda error, lines: ApiError(
        409, "queue_closed", "The shop has closed this line: nobody more is let in."),
    queue.TooManyEntries: _too_many_entries,
    draw.NotADrawProduct: lambda error, lines: not_found("No such product."),
    draw.NoDraw: lambda error, lines: ApiError(409, "no_draw", "This product is not sold by a draw."),
    draw.DrawNotOpen: lambda error, lines: ApiError(
        409, "draw_not_open", f"Entries open at {isoformat_z(error.opens_at)}.", opensAt=isoformat_z(error.opens_at)),
    draw.DrawClosed: lambda error, lines: ApiError(
        409, "draw_closed", f"Entries closed at {isoformat_z(error.closed_at)}.", closesAt=isoformat_z(error.closed_at)),
    draw.AlreadyEntered: _already_entered,
    carts.EmptyCart: lambda error, lines: ApiError(400, "empty_cart", "The cart is empty."),
    carts.MixedCurrencies: lambda error, lines: ApiError(409, "mixed_currencies", "A checkout pays in one currency."),
    carts.CartFull: lambda error, lines: ApiError(409, "cart_full",
                                                  f"A cart holds at most {carts.MAX_CART_LINES} products."),
}
REFUSED = tuple(REFUSALS)  # what a way in catches: ``except REFUSED as refused: raise refusal(refused)``


def refusal(error: Exception, *, lines: bool = False) -> ApiError:
    """The answer to this refusal (see the module's table)."""
    return REFUSALS[type(error)](error, lines)


def paused_error() -> ApiError:
    return refusal(grants.Paused([]))
