"""Plain functions that make test data."""

import itertools
from datetime import timedelta

from sqlalchemy import update

from storefront.catalog.models import Product
from storefront.clock import utcnow
from storefront.extensions import db
from storefront.inventory.models import Hold

_sequence = itertools.count(1)


def make_product(total: int = 5, price: int = 2500, currency: str = "usd", **fields) -> Product:
    number = next(_sequence)
    product = Product(
        sku=fields.pop("sku", f"TEST-{number}"),
        name=fields.pop("name", f"Test product {number}"),
        description=fields.pop("description", "A product made by a test."),
        price=price,
        currency=currency,
        total_quantity=total,
        image=fields.pop("image", None),
        **fields,
    )
    db.session.add(product)
    db.session.commit()
    return product


def visitor(n: int | str = 1) -> str:
    return f"visitor-{n:0>6}"


def lapse(reservation_id: str, seconds_ago: int = 1) -> None:
    """Move a hold's expires_at into the past, as if its time had run out."""
    import uuid

    db.session.execute(
        update(Hold.__table__)
        .where(Hold.__table__.c.id == uuid.UUID(reservation_id))
        .values(expires_at=utcnow() - timedelta(seconds=seconds_ago))
    )
    db.session.commit()
