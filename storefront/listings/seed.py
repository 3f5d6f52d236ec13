"""The demo catalogue: a few things to buy, one of them a single unit so sold-out is easy to see,
and a drop: a product in three sizes that goes on sale a few minutes after it is first loaded,
so a newcomer's first page shows the countdown and the live view has a drop to show."""

from datetime import timedelta

from sqlalchemy import select

from storefront.catalog.models import Product
from storefront.clock import isoformat_z, utcnow
from storefront.extensions import db
from storefront.inventory.stock import spread_total
from storefront.listings.management import add_product

DROP_STARTS_AFTER = timedelta(minutes=5)
DEMO_DROP = {
    "sku": "RUNNER-SPRING",
    "name": "Trail runner, spring drop",
    "description": ("One run of the spring colourway, in three sizes. On sale at the time shown, not before, "
                    "to a line: join it before the start, and places are drawn at random when it comes."),
    "price": "140.00",
    "currency": "usd",
    "total": "0",
    "queue": "yes",
}
DEMO_DROP_SIZES = [("EU 41", 3), ("EU 42", 5), ("EU 43", 2)]

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
    if DEMO_DROP["sku"] not in existing:
        added += _add_demo_drop()
    return added


def _add_demo_drop() -> list[str]:
    """The drop and its sizes, through the same rules as the CLI and the admin (listings/management.py)."""
    starts_at = isoformat_z(utcnow().replace(microsecond=0) + DROP_STARTS_AFTER)
    skus = [DEMO_DROP["sku"]]
    with db.engine.begin() as conn:
        add_product(conn, {**DEMO_DROP, "starts_at": starts_at}, image="img/products/runner.svg")
        for label, total in DEMO_DROP_SIZES:
            sku = f"{DEMO_DROP['sku']}-{label.split()[-1]}"
            add_product(conn, {"sku": sku, "option_of": DEMO_DROP["sku"], "option": label, "total": str(total)})
            skus.append(sku)
    return skus
