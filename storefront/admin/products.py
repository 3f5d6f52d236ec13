"""The operator's catalogue: add and edit products (with a photo), archive and restore them.

Plain forms, posted whole (a photo needs multipart anyway), answered with a redirect
once saved, or with the same form and what was wrong (400). The rules are the CLI's
(``listings/management.py``): every field checked before anything is written, a total
never below what is sold and held, a price change never touching a hold already placed.
"""

import logging

from flask import current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from storefront.admin import bp
from storefront.admin.downloads import csv_download
from storefront.admin.log import record_action
from storefront.assets import upload_root
from storefront.catalog.images import InvalidImage, store_image
from storefront.catalog.models import SALE_STATES, Product
from storefront.clock import utcnow
from storefront.database import dry_run, reading
from storefront.errors import ApiError, not_found
from storefront.extensions import db
from storefront.inventory.stock import bucket_levels, stock_levels, unit_counts
from storefront.listings.management import (
    FIELDS,
    CatalogRefused,
    InvalidField,
    add_product,
    archive_product,
    changes_digest,
    csv_rows,
    export_csv,
    import_with_changes,
    update_product,
    uploaded_text,
)
from storefront.money import price_text
from storefront.shop_zone import picker_value, shop_zone

log = logging.getLogger(__name__)


def _products():
    products = db.session.execute(select(Product).order_by(Product.archived_at.is_not(None), Product.id)).scalars().all()
    return products, stock_levels(db.session.connection(), [product.id for product in products])


def _form_values() -> dict:
    values = {field: request.form.get(field) for field in FIELDS}
    # The queue's checkbox: a hidden "no" comes first, the box's "yes" after it when ticked.
    values["queue"] = request.form.getlist("queue")[-1] if "queue" in request.form else None
    values["draw"] = request.form.getlist("draw")[-1] if "draw" in request.form else None
    return values


def _photo() -> str | None:
    """The uploaded photo, stored; None when none was chosen. Raises InvalidField."""
    upload = request.files.get("image")
    if upload is None or not upload.filename:
        return None
    try:
        return store_image(upload.stream, upload_root(current_app))
    except InvalidImage as invalid:
        raise InvalidField("image", str(invalid)) from None


def sale_states(products, levels) -> dict[int, str]:
    """Each product's sale state; a product with options is available while any of them is."""
    available = {product.id: levels[product.id].available for product in products}
    for product in products:
        if product.option_of is not None and product.option_of in available and not product.archived:
            available[product.option_of] += levels[product.id].available
    now = utcnow()
    return {product.id: product.sale_state(available[product.id], now) for product in products}


def _list_page(error: InvalidField | None = None, status: int = 200):
    products, levels = _products()
    return render_template("admin/products.html", products=products, levels=levels, error=error,
                           states=sale_states(products, levels), state_labels=SALE_STATES,
                           values=_form_values() if error else {"currency": "usd"}), status


@bp.get("/products")
def products_page():
    return _list_page()


@bp.get("/products.csv")
def products_export():
    """The catalogue in the import's own columns (listings/management.py: export_csv)."""
    with reading() as conn:
        return csv_download(export_csv(conn), "catalogue")


def _preview(csv_text: str, rows: list[dict], status: int = 200, outdated: bool = False):
    """What the file would change, found by importing it in a transaction that is then rolled back."""
    try:
        with dry_run() as conn:
            changes = import_with_changes(conn, rows)
    except CatalogRefused as refused:
        return render_template("admin/import.html", problems=refused.problems, rows=rows), 400
    return render_template("admin/import.html", changes=changes, rows=rows, csv_text=csv_text,
                           digest=changes_digest(changes), outdated=outdated), status


@bp.post("/products/import")
def preview_import():
    """Step one of an import from the admin: the uploaded file checked whole, and what it would change."""
    upload = request.files.get("catalogue")
    if upload is None or not upload.filename:
        raise ApiError(400, "invalid_request", "Choose a CSV file to import.", field="catalogue")
    try:
        csv_text = uploaded_text(upload.read())
        rows = csv_rows(csv_text)
    except CatalogRefused as refused:
        return render_template("admin/import.html", problems=refused.problems, rows=[]), 400
    return _preview(csv_text, rows)


@bp.post("/products/import/apply")
def apply_import():
    """Step two: the same file again, applied only when it changes exactly what the preview showed
    (the catalogue may have moved since: then the new preview is shown instead, 409)."""
    csv_text, rows = request.form.get("csv_text") or "", []
    try:
        rows = csv_rows(csv_text)
        with db.engine.begin() as conn:
            changes = import_with_changes(conn, rows)
            if changes_digest(changes) != request.form.get("digest"):
                raise _PreviewOutdated
            added = sum(change.added for change in changes)
            record_action(conn, None, "import", f"Imported the catalogue from a CSV file: {len(rows)} rows, "
                                                f"{added} products added, {len(changes) - added} changed.")
    except CatalogRefused as refused:
        return render_template("admin/import.html", problems=refused.problems, rows=rows), 400
    except _PreviewOutdated:
        return _preview(csv_text, rows, 409, outdated=True)
    log.info("admin imported the catalogue from %s", request.remote_addr)
    flash(f"Imported {len(rows)} rows: {added} products added, {len(changes) - added} changed.")
    return redirect(url_for("admin.products_page"), 303)


class _PreviewOutdated(Exception):
    """The file no longer changes what its preview showed: nothing is applied."""


@bp.post("/products")
def create_product():
    try:
        image = _photo()
        with db.engine.begin() as conn:
            product_id = add_product(conn, _form_values(), image)
    except InvalidField as invalid:
        return _list_page(invalid, 400)
    log.info("admin added product %s", product_id)
    flash(f"Added {request.form.get('name')}.")
    return redirect(url_for("admin.products_page"), 303)


def _product(product_id: int) -> Product:
    product = db.session.get(Product, product_id)
    if product is None:
        raise not_found("No such product.")
    return product


def _edit_page(product: Product, error: InvalidField | None = None, status: int = 200):
    values = _form_values() if error else {
        "sku": product.sku, "name": product.name, "description": product.description,
        "price": price_text(product.price, product.currency), "currency": product.currency, "total": str(unit_counts(db.session.connection(), [product.id])[product.id].total),
        "starts_at": picker_value(product.starts_at, shop_zone()),
        "queue": "yes" if product.queued else "no",
        "draw": "yes" if product.draw else "no",
        "entries_close": picker_value(product.entries_close, shop_zone()) if product.entries_close else "",
        "per_buyer": "" if product.per_buyer is None else str(product.per_buyer)}
    conn = db.session.connection()
    stock = stock_levels(conn, [product.id])[product.id]
    options = db.session.execute(select(Product).where(Product.option_of == product.id).order_by(Product.id)
                                 ).scalars().all()
    family = [product, *options]
    state = sale_states(family, stock_levels(conn, [item.id for item in family]))[product.id]
    return render_template("admin/product.html", product=product, values=values, error=error, stock=stock,
                           state=state, state_labels=SALE_STATES,
                           sold=unit_counts(conn, [product.id])[product.id].sold,
                           buckets=bucket_levels(conn, product.id), options=options,
                           option_levels=stock_levels(conn, [option.id for option in options]),
                           parent=db.session.get(Product, product.option_of) if product.option_of else None), status


@bp.get("/products/<product_id:product_id>")
def edit_product(product_id: int):
    return _edit_page(_product(product_id))


@bp.post("/products/<product_id:product_id>")
def save_product(product_id: int):
    product = _product(product_id)
    db.session.rollback()  # the update below takes the product's lock on its own connection
    try:
        image = _photo()
        with db.engine.begin() as conn:
            update_product(conn, product_id, _form_values(), image)
    except InvalidField as invalid:
        return _edit_page(_product(product_id), invalid, 400)
    log.info("admin updated product %s", product_id)
    flash(f"Saved {request.form.get('name') or product.name}.")
    return redirect(url_for("admin.edit_product", product_id=product_id), 303)


@bp.post("/products/<product_id:product_id>/options")
def add_option(product_id: int):
    """An option of this product (a size, a colour): its own SKU and stock; name, price and start its product's."""
    product = _product(product_id)
    values = {"option_of": product.sku, "option": request.form.get("option"), "sku": request.form.get("sku"),
              "total": request.form.get("total"), "price": request.form.get("price") or None}
    try:
        with db.engine.begin() as conn:
            option_id = add_product(conn, values)
    except InvalidField as invalid:
        return _edit_page(product, invalid, 400)
    log.info("admin added option %s of product %s", option_id, product_id)
    flash(f"Added the option {values['option']}.")
    return redirect(url_for("admin.edit_product", product_id=product_id), 303)


@bp.post("/products/<product_id:product_id>/<any(archive, restore):action>")
def archive_or_restore(product_id: int, action: str):
    with db.engine.begin() as conn:
        if not archive_product(conn, product_id, archived=action == "archive"):
            raise not_found("No such product.")
        record_action(conn, product_id, action, "Archived the product." if action == "archive"
                      else "Restored the product to the catalogue.")
    log.info("admin %sd product %s", action, product_id)
    flash("Archived: it left the catalogue; its orders and live holds stay." if action == "archive"
          else "Restored to the catalogue.")
    return redirect(url_for("admin.edit_product", product_id=product_id), 303)


@bp.post("/products/<product_id:product_id>/<any(pause, resume):action>")
def pause_or_resume(product_id: int, action: str):
    """Pause a sale on the day (no new hold, checkout or place; those given keep running), or resume it.
    From the product's page and from the drop's live view, which it goes back to."""
    product = _product(product_id)
    db.session.rollback()
    with db.engine.begin() as conn:
        update_product(conn, product.id, {"paused": action == "pause"})
        record_action(conn, product.id, action, "Paused the sale." if action == "pause" else "Resumed the sale.")
    log.info("admin %sd product %s from %s", action, product_id, request.remote_addr)
    flash("Paused: nobody can hold, check out or join its line until you resume." if action == "pause"
          else "Resumed: it is on sale again.")
    back = request.form.get("back")
    if back == "drop":
        return redirect(url_for("admin.drop_page", product_id=product_id), 303)
    return redirect(url_for("admin.edit_product", product_id=product_id), 303)
