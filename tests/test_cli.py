"""flask seed, flask stock set, flask sweep and flask jobs failed."""

from sqlalchemy import func, select

from storefront.catalog.models import Product
from storefront.extensions import db
from tests.factories import lapse, make_product, visitor, units


def test_seed_loads_the_demo_catalogue_once_with_a_drop_a_few_minutes_off(runner, client):
    from datetime import timedelta

    from storefront.clock import utcnow

    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0
    assert "Added 8 demo products" in first.output
    again = runner.invoke(args=["seed"])
    assert again.exit_code == 0
    assert "already loaded" in again.output
    products = db.session.execute(select(Product)).scalars().all()
    assert len(products) == 8
    assert any(units(p.id).total == 1 for p in products)
    assert all(p.image for p in products if p.option_of is None)
    # The drop: a product in three sizes, each its own stock, on sale in about five minutes.
    drop = next(p for p in products if p.sku == "RUNNER-SPRING")
    sizes = sorted((p.option_label, units(p.id).total) for p in products if p.option_of == drop.id)
    assert sizes == [("EU 41", 3), ("EU 42", 5), ("EU 43", 2)]
    assert timedelta(minutes=4) < drop.starts_at - utcnow() <= timedelta(minutes=5)
    size = next(p for p in products if p.option_of == drop.id)
    refused = client.post("/api/reservations", json={"productId": size.id, "userId": visitor(1)})
    assert refused.status_code == 409 and refused.get_json()["error"] == "not_on_sale"


def test_stock_set_changes_the_total(runner):
    product = make_product(total=5)
    result = runner.invoke(args=["stock", "set", str(product.id), "12"])
    assert result.exit_code == 0, result.output
    assert "total 12, available 12" in result.output
    db.session.expire_all()
    assert units(product.id).total == 12


def test_stock_set_refuses_a_total_below_what_is_sold_and_held(runner, client):
    product = make_product(total=5)
    client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1), "quantity": 3})
    result = runner.invoke(args=["stock", "set", str(product.id), "2"])
    assert result.exit_code == 1
    assert "3 held" in result.output and "cannot go below 3" in result.output
    db.session.expire_all()
    assert units(product.id).total == 5
    assert runner.invoke(args=["stock", "set", str(product.id), "3"]).exit_code == 0


def test_stock_set_on_an_unknown_product_fails_clearly(runner):
    result = runner.invoke(args=["stock", "set", "4242", "3"])
    assert result.exit_code == 1
    assert "No product with id 4242" in result.output
    assert db.session.execute(select(func.count()).select_from(Product)).scalar_one() == 0


def test_sweep_says_what_it_did_and_jobs_failed_without_redis_is_not_an_error(runner, client):
    product = make_product(total=2)
    held = client.post("/api/reservations", json={"productId": product.id, "userId": visitor(1), "quantity": 2})
    lapse(held.get_json()["reservationId"])
    swept = runner.invoke(args=["sweep"])
    assert swept.exit_code == 0 and swept.output.startswith("2 units released")
    listed = runner.invoke(args=["jobs", "failed"])  # the suite's app has no REDIS_URL: nothing can fail and wait
    assert listed.exit_code == 0 and listed.output.startswith("No failed jobs")
    assert runner.invoke(args=["jobs", "retry", "--all"]).exit_code == 1  # nothing to retry from: said, status 1
