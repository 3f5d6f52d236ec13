"""Flask commands: ``flask --app storefront seed`` and ``stock set``."""

import click
from flask import Flask
from flask.cli import AppGroup

from storefront.catalog.seed import seed_demo_catalogue
from storefront.extensions import db
from storefront.inventory.stock import BelowCommitted, set_total

stock_cli = AppGroup("stock", help="Inspect and change stock.")


@click.command("seed")
def seed_command():
    """Load the demo catalogue (idempotent)."""
    added = seed_demo_catalogue()
    if added:
        click.echo(f"Added {len(added)} demo products: {', '.join(added)}.")
    else:
        click.echo("The demo catalogue is already loaded.")


@stock_cli.command("set")
@click.argument("product_id", type=click.IntRange(min=1))
@click.argument("total", type=click.IntRange(min=0))
def stock_set_command(product_id: int, total: int):
    """Set PRODUCT_ID's total quantity to TOTAL."""
    try:
        with db.engine.connect() as conn:
            stock = set_total(conn, product_id, total)
    except BelowCommitted as committed:
        raise click.ClickException(
            f"Refused: product {product_id} has {committed.sold} sold and {committed.held} held, "
            f"so its total cannot go below {committed.sold + committed.held}."
        ) from None
    if stock is None:
        raise click.ClickException(f"No product with id {product_id}.")
    click.echo(f"Product {product_id}: total {stock.total}, available {stock.available}.")


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_command)
    app.cli.add_command(stock_cli)
