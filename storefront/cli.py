"""Flask commands: ``seed``, ``stock set``, ``product add|update|archive``, ``catalog import``, ``sweep``,
``jobs failed`` and ``jobs retry``."""

import csv

import click
from flask import Flask
from flask.cli import AppGroup

from storefront.extensions import db
from storefront.inventory.stock import BelowCommitted, set_total
from storefront.listings.seed import seed_demo_catalogue

stock_cli = AppGroup("stock", help="Inspect and change stock.")
jobs_cli = AppGroup("jobs", help="Background jobs that failed, and retrying them (needs REDIS_URL).")
product_cli = AppGroup("product", help="Add and change one product (prices in major units of its currency: 25.00 dollars, 1500 yen, 25.500 dinars).")
catalog_cli = AppGroup("catalog", help="The whole catalogue at once.")


def _product_options(required: bool):
    def decorate(command):
        for name, help_text in reversed([
            ("--sku", "stock-keeping unit, unique: 1 to 64 of A-Z a-z 0-9 . _ -"),
            ("--name", "what shoppers see"),
            ("--description", "a few sentences"),
            ("--price", "price of one unit in major units: 25.00 (usd), 1500 (jpy), 25.500 (kwd)"),
            ("--currency", "three-letter code (default usd)"),
            ("--total", "units in stock in all (never below what is sold and held)"),
            ("--starts-at", "when it goes on sale: 2026-01-01T10:00 in SHOP_TIMEZONE, or an exact moment such as "
                            '2026-01-01T10:00:00Z ("" clears it); an option has its product\'s'),
            ("--option-of", "SKU of the product this is an option of (a size, a colour): its own stock, "
                            "its product's name, price and start time"),
            ("--option", "the option's label: EU 42, Blue"),
        ]):
            needed = required and name in ("--sku", "--total")  # name and price: an option has its product's
            command = click.option(name, required=needed, help=help_text)(command)
        command = click.option("--per-buyer", "per_buyer",
                               help='the most units one buyer gets of it and its options ("" for no limit); '
                                    "an option has its product's")(command)
        command = click.option("--pause/--resume", "paused", default=None,
                               help="stop and restart its sale on the day: no new hold, checkout or place "
                                    "meanwhile (those given keep running); an option has its product's")(command)
        command = click.option("--entries-close", "entries_close",
                               help="when a draw's entries close: at most 5 days after --starts-at, in "
                                    "SHOP_TIMEZONE or with an offset; an option has its product's")(command)
        command = click.option("--draw/--no-draw", "draw", default=None,
                               help="sell the drop by a draw: entries from --starts-at until --entries-close, "
                                    "winners drawn and charged at the close; an option has its product's")(command)
        return click.option("--queue/--no-queue", "queue", default=None,
                            help="let the drop's crowd in through a waiting room (needs --starts-at); "
                                 "an option has its product's")(command)
    return decorate


def _named_product(conn, named: str) -> int:
    """The product an owner names on the command line, by its id or its SKU; else a clear refusal."""
    from storefront.listings.management import product_by_id_or_sku

    product_id = product_by_id_or_sku(conn, named)
    if product_id is None:
        raise click.ClickException(f"No product with id or SKU {named}.")
    return product_id


def _starting(product_id: int) -> str:
    """When the product goes on sale, as the owner reads it back: in the shop's zone, saying which."""
    from sqlalchemy import select

    from storefront.catalog.models import products
    from storefront.database import reading
    from storefront.shop_zone import shop_zone, zoned_text

    with reading() as conn:
        starts_at = conn.execute(select(products.c.starts_at).where(products.c.id == product_id)).scalar_one()
    zone = shop_zone()
    return f"; on sale from {zoned_text(starts_at, zone)} ({zone.key})" if starts_at else "; on sale at once"


@product_cli.command("add")
@_product_options(required=True)
def product_add_command(**values):
    """Add a product."""
    from storefront.listings.management import InvalidField, add_product

    try:
        with db.engine.begin() as conn:
            product_id = add_product(conn, values)
    except InvalidField as invalid:
        raise click.ClickException(f"Refused: {invalid}") from None
    click.echo(f"Added product {product_id} ({values['sku']}){_starting(product_id)}.")


@product_cli.command("update")
@click.argument("product")
@_product_options(required=False)
def product_update_command(product: str, **values):
    """Change the given fields of PRODUCT, named by its id or its SKU (holds already placed keep their price)."""
    from storefront.listings.management import InvalidField, update_product

    values = {field: value for field, value in values.items() if value is not None}
    if not values:
        raise click.UsageError("name at least one field to change, e.g. --price 19.50")
    try:
        with db.engine.begin() as conn:
            product_id = _named_product(conn, product)
            update_product(conn, product_id, values)
    except InvalidField as invalid:
        raise click.ClickException(f"Refused: {invalid}") from None
    click.echo(f"Updated product {product_id}: {', '.join(sorted(values))}"
               f"{_starting(product_id) if 'starts_at' in values else ''}.")


@product_cli.command("archive")
@click.argument("product")
@click.option("--restore", is_flag=True, help="Bring an archived product back into the catalogue.")
def product_archive_command(product: str, restore: bool):
    """Retire PRODUCT (its id or its SKU): gone from the catalogue and from new holds, kept in orders.
    Its live holds still complete or lapse as usual."""
    from storefront.listings.management import archive_product

    with db.engine.begin() as conn:
        product_id = _named_product(conn, product)
        archive_product(conn, product_id, archived=not restore)
    click.echo(f"Product {product_id} {'restored to' if restore else 'archived: gone from'} the catalogue.")


@catalog_cli.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--dry-run", is_flag=True, help="Say what the file would change, product by product, and change nothing.")
def catalog_import_command(csv_file, dry_run: bool):
    """Add or update products from CSV_FILE, by sku: columns sku, name, description, price,
    currency, total, starts_at, option_of, option, queue (yes or no), per_buyer, paused, draw (yes or no),
    entries_close (catalog export writes them all). A starts_at without an offset is read in SHOP_TIMEZONE. Every row is checked first; one wrong row and
    nothing is imported. --dry-run says what would change and changes nothing."""
    from storefront.database import dry_run as previewing
    from storefront.listings.management import CatalogRefused, import_rows, import_with_changes

    rows = list(csv.DictReader(csv_file))
    try:
        if dry_run:
            with previewing() as conn:
                changes = import_with_changes(conn, rows)
        else:
            with db.engine.begin() as conn:
                added, updated = import_rows(conn, rows)
    except CatalogRefused as refused:
        for problem in refused.problems:
            click.echo(f"Refused: {problem}", err=True)
        raise click.ClickException("the file would import nothing" if dry_run else "nothing was imported") from None
    if not dry_run:
        click.echo(f"Imported {len(rows)} rows: {added} added, {updated} updated.")
        return
    for change in changes:
        click.echo(f"{change.sku}: {'added' if change.added else 'changed'}: " + "; ".join(
            f"{name} {after}" if change.added else f"{name} {before or '(empty)'} → {after or '(empty)'}"
            for name, before, after in change.fields))
    click.echo(f"Dry run: {len(rows)} rows would add {sum(c.added for c in changes)} and change "
               f"{sum(not c.added for c in changes)} products; nothing was changed.")


@catalog_cli.command("export")
@click.argument("csv_file", type=click.File("w", encoding="utf-8"), default="-")
def catalog_export_command(csv_file):
    """Write the catalogue to CSV_FILE (standard output by default) in the columns catalog
    import reads: edit it in a spreadsheet, import it back, and exactly the edits change."""
    from storefront.database import reading
    from storefront.listings.management import export_csv

    with reading() as conn:
        csv_file.write(export_csv(conn))


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
        with db.engine.begin() as conn:
            stock = set_total(conn, product_id, total)
    except BelowCommitted as committed:
        raise click.ClickException(
            f"Refused: product {product_id} has {committed.sold} sold and {committed.held} held, "
            f"so its total cannot go below {committed.sold + committed.held}."
        ) from None
    if stock is None:
        raise click.ClickException(f"No product with id {product_id}.")
    click.echo(f"Product {product_id}: total {stock.total}, available {stock.available}.")


@click.command("sweep")
def sweep_command():
    """Expire lapsed holds and settle their payments with Stripe, once (the worker does it every interval)."""
    from storefront.sweep import sweep

    swept = sweep()
    asked = ", ".join(f"{count} {outcome}" for outcome, count in sorted(swept["intents"].items())) or "none due"
    click.echo(f"{swept['unitsReleased']} units released; payment intents asked about: {asked}.")


def _failed_registry():
    from storefront.jobs import RedisJobs, job_runner

    runner = job_runner()
    if not isinstance(runner, RedisJobs):
        raise click.ClickException("REDIS_URL is not set: in embedded mode jobs run at once and never wait as failed.")
    return runner.failed_registry(), runner


@jobs_cli.command("failed")
def jobs_failed_command():
    """List the jobs that ran out of retries, with their error (exit status 0 once listed, none or some)."""
    from storefront.jobs import RedisJobs, job_runner

    if not isinstance(job_runner(), RedisJobs):  # nothing can wait as failed: nothing is wrong
        click.echo("No failed jobs: without REDIS_URL jobs run at once, in the process that asks for them.")
        return
    registry, runner = _failed_registry()
    job_ids = registry.get_job_ids()
    if not job_ids:
        click.echo("No failed jobs.")
        return
    for job in runner.fetch_many(job_ids):
        if job is None:
            continue
        error = (job.latest_result().exc_string if job.latest_result() else "") or ""
        last_line = error.strip().splitlines()[-1] if error.strip() else "(no error recorded)"
        click.echo(f"{job.id}	{job.func_name}	failed {job.ended_at:%Y-%m-%d %H:%M:%S}Z	{last_line}")


@jobs_cli.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every failed job.")
def jobs_retry_command(job_ids, retry_all):
    """Put failed jobs back on the queue (they are safe to run twice)."""
    registry, _ = _failed_registry()
    if retry_all:
        job_ids = registry.get_job_ids()
    if not job_ids:
        raise click.UsageError("name the JOB_IDS to retry, or --all")
    missing = [job_id for job_id in job_ids if job_id not in registry]
    if missing:
        raise click.ClickException(f"Not among the failed jobs: {', '.join(missing)}")
    for job_id in job_ids:
        registry.requeue(job_id)
    click.echo(f"Requeued {len(job_ids)} job(s).")


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_command)
    app.cli.add_command(stock_cli)
    app.cli.add_command(product_cli)
    app.cli.add_command(catalog_cli)
    app.cli.add_command(sweep_command)
    app.cli.add_command(jobs_cli)
