from flask import Blueprint, abort, render_template
from sqlalchemy import select

from storefront.catalog.models import Product
from storefront.extensions import db
from storefront.inventory.stock import stock_levels, stock_of

bp = Blueprint("catalog", __name__)


@bp.get("/")
def index():
    products = db.session.execute(
        select(Product).where(Product.archived_at.is_(None)).order_by(Product.id)).scalars().all()
    levels = stock_levels(db.session.connection(), (product.id for product in products))
    return render_template("catalog/index.html", products=products, levels=levels)


@bp.get("/products/<product_id:product_id>")
def product_page(product_id: int):
    product = db.session.get(Product, product_id)
    if product is None or product.archived:
        abort(404, "No such product.")
    return render_template("catalog/product.html", product=product, stock=stock_of(db.session.connection(), product_id))
