"""The refusals a hold, a checkout and a place in a line share: one message and one set of fields
for each, whichever way in met it."""

from storefront.errors import ApiError
from storefront.inventory import grants, queue


def paused_error() -> ApiError:
    return ApiError(409, "paused", "This sale is paused for a moment; try again shortly.")


def buyer_limit_error(limit: grants.BuyerLimit) -> ApiError:
    return ApiError(409, "buyer_limit", f"One buyer may have {limit.limit} of this product; you have {limit.held}.",
                    productId=limit.product_id, limit=limit.limit, held=limit.held)



def not_admitted_error(refused: queue.NotAdmitted) -> ApiError:
    """409 not_admitted for a hold or a checkout on a queued product without a live pass."""
    if refused.position is None:
        message = "This drop lets its buyers in through a line: join it on the product's page."
    else:
        message = f"Your place is {refused.position}; the line is let in through {refused.admitted_through}."
    return ApiError(409, "not_admitted", message, productId=refused.queue_of, position=refused.position,
                    admittedThrough=refused.admitted_through)
