from collections import defaultdict

from flask import current_app, render_template, request
from sqlalchemy import select

from storefront.catalog.models import Product
from storefront.clock import utcnow
from storefront.database import reading
from storefront.errors import not_found
from storefront.extensions import db
from storefront.inventory import draw, queue
from storefront.inventory.stock import stock_levels
from storefront.shop import bp


def _options_of(product_ids) -> dict[int, list[Product]]:
    """The options on sale of each of these products, in the order they were added."""
    options = db.session.execute(select(Product).where(
        Product.option_of.in_(list(product_ids)), Product.archived_at.is_(None)).order_by(Product.id)).scalars()
    found = defaultdict(list)
    for option in options:
        found[option.option_of].append(option)
    return found


@bp.get("/")
def index():
    """One card per product; a product with options says which are left, and its page sells them."""
    products = db.session.execute(select(Product).where(
        Product.archived_at.is_(None), Product.option_of.is_(None)).order_by(Product.id)).scalars().all()
    options = _options_of(product.id for product in products)
    ids = [product.id for product in products] + [o.id for each in options.values() for o in each]
    levels = stock_levels(db.session.connection(), ids)
    in_stock = {product_id for product_id, stock in levels.items() if stock.available > 0}
    return render_template("shop/index.html", products=products, levels=levels, options=options, in_stock=in_stock)


@bp.get("/products/<product_id:product_id>")
def product_page(product_id: int):
    """A product's page; an option's id shows its product with that option chosen."""
    product = db.session.get(Product, product_id)
    if product is None or product.archived:
        raise not_found("No such product.")
    chosen = None
    if product.option_of is not None:
        chosen, product = product, db.session.get(Product, product.option_of)
        if product is None or product.archived:
            raise not_found("No such product.")
    options = _options_of([product.id])[product.id]
    levels = stock_levels(db.session.connection(), [product.id] + [o.id for o in options])
    if options and chosen is None:  # the first one left, else the first
        chosen = next((o for o in options if levels[o.id].available > 0), options[0])
    standing = None
    if product.queued:  # the line as it stands; the shopper's own place comes once the page knows them
        with reading() as conn:
            queued = queue.queued_product(conn, product.id, current_app.config["STOREFRONT"].queue_opens_before_seconds)
            standing = queue.standing(conn, queued, utcnow())
    drawing = None
    if product.draw:  # how the draw stands; the shopper's own entry comes once the page knows them
        with reading() as conn:  # the first reader after the opening draws the seed, as for a line
            drawing = draw.standing(conn, draw.draw_product(conn, product.id), utcnow())
    return render_template("shop/product.html", product=product, stock=levels[product.id], options=options,
                           chosen=chosen, levels=levels, standing=standing, drawing=drawing,
                           named_intent=request.args.get("payment_intent"))
