"""The demo catalogue: a few things to buy, one of them a single unit so sold-out is easy to see."""

from sqlalchemy import select

from storefront.catalog.models import Product
from storefront.extensions import db
from storefront.inventory.stock import spread_total

DEMO_PRODUCTS = [
    {
        "sku": "NOTEBOOK-A5",
        "name": "Field notebook",
        "description": "A5, 96 dot-grid pages of 100 g paper, stitched and flat-opening.",
        "price": 1800,
        "currency": "usd",
        "total": 40,
        "image": "img/products/notebook.svg",
    },
    {
        "sku": "MUG-ENAMEL",
        "name": "Enamel mug",
        "description": "350 ml enamel over steel, for the desk or the campsite.",
        "price": 2500,
        "currency": "usd",
        "total": 10,
        "image": "img/products/mug.svg",
    },
    {
        "sku": "BEANIE-WOOL",
        "name": "Merino beanie",
        "description": "Fine-knit merino wool, one size, in deep teal.",
        "price": 3200,
        "currency": "usd",
        "total": 25,
        "image": "img/products/beanie.svg",
    },
    {
        "sku": "PRINT-ONE-OF-ONE",
        "name": "Signed print, 1 of 1",
        "description": "A risograph print, signed and numbered. There is exactly one.",
        "price": 12000,
        "currency": "usd",
        "total": 1,
        "image": "img/products/print.svg",
    },
]


def seed_demo_catalogue() -> list[str]:
    """Add the demo products that are missing; existing ones are left as they are.

    Returns the SKUs added.
    """
    existing = set(db.session.execute(select(Product.sku)).scalars())
    added = []
    for item in DEMO_PRODUCTS:
        if item["sku"] in existing:
            continue
        fields = dict(item)
        total = fields.pop("total")
        product = Product(**fields)
        db.session.add(product)
        db.session.flush()
        spread_total(db.session.connection(), product.id, total)
        added.append(item["sku"])
    db.session.commit()
    return added
