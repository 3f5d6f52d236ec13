"""Money by each currency's exponent as Stripe defines it: typed in major units from the CLI,
the CSV import and the admin, stored and charged in Stripe's minor units (checked on the
PaymentIntent localstripe holds), shown as charged, and refused when Stripe would refuse it."""

import re

import pytest
import requests
from sqlalchemy import select

from storefront.catalog.models import Product
from storefront.extensions import db
from storefront.formatting import money
from storefront.money import CURRENCIES, InvalidAmount, major_units, minor_units, price_text
from tests.factories import STRIPE_KEYS, visitor
from tests.test_admin import PASSWORD, basic
from tests.test_admin_shop import form_token, product_form

HTMX = {"HX-Request": "true"}


@pytest.fixture
def shop(make_app, settings, localstripe):
    app = make_app({**settings, **STRIPE_KEYS, "STRIPE_API_BASE": localstripe.url, "ADMIN_PASSWORD": PASSWORD})
    with app.app_context():
        yield app


def product(sku: str) -> Product:
    db.session.expire_all()
    return db.session.execute(select(Product).where(Product.sku == sku)).scalar_one()


def charged(app, localstripe, product_id: int) -> tuple[int, str]:
    """Hold one unit as a shopper's page does, and read the PaymentIntent Stripe got."""
    client = app.test_client()
    held = client.post("/api/reservations", data={"productId": product_id, "userId": visitor(product_id)},
                       headers=HTMX)
    assert held.status_code == 201, held.get_data(as_text=True)
    hold_id = re.search(r'id="hold-([0-9a-f-]+)"', held.get_data(as_text=True)).group(1)
    intent_id = client.get(f"/api/reservations/{hold_id}",
                           headers={"X-Visitor-Id": visitor(product_id)}).get_json()["paymentIntentId"]
    intent = requests.get(f"{localstripe.url}/v1/payment_intents/{intent_id}", timeout=10,
                          headers={"Authorization": f"Bearer {STRIPE_KEYS['STRIPE_SECRET_KEY']}"}).json()
    return intent["amount"], intent["currency"]


def test_yen_dinars_and_dollars_typed_in_the_cli_csv_and_admin_are_charged_exactly(shop, localstripe, tmp_path):
    runner, owner = shop.test_cli_runner(), shop.test_client()
    added = runner.invoke(args=["product", "add", "--sku", "TENUGUI", "--name", "Tenugui", "--price", "1500",
                                "--currency", "jpy", "--total", "3"])
    assert added.exit_code == 0, added.output
    csv_file = tmp_path / "catalogue.csv"
    csv_file.write_text("sku,name,description,price,currency,total\nDALLAH,Dallah,,25.500,kwd,2\n", encoding="utf-8")
    imported = runner.invoke(args=["catalog", "import", str(csv_file)])
    assert imported.exit_code == 0, imported.output
    saved = owner.post("/admin/products", headers=basic(),
                       data=product_form(form_token(owner), sku="LAMP", price="25.00", currency="usd"))
    assert saved.status_code == 303

    expected = {"TENUGUI": (1500, "jpy", "¥1,500", "1500"), "DALLAH": (25500, "kwd", "KWD25.500", "25.500"),
                "LAMP": (2500, "usd", "$25.00", "25.00")}
    for sku, (amount, currency, shown, typed) in expected.items():
        item = product(sku)
        assert (item.price, item.currency) == (amount, currency)
        assert charged(shop, localstripe, item.id) == (amount, currency)
        assert shown in owner.get(f"/products/{item.id}").get_data(as_text=True)
        # The admin's edit form gives the price back as it was typed, not in minor units.
        edit = owner.get(f"/admin/products/{item.id}", headers=basic()).get_data(as_text=True)
        assert f'name="price" value="{typed}"' in edit


@pytest.mark.parametrize("price, currency, says", [
    ("0.49", "usd", "at least 0.50 USD"),
    ("49", "jpy", "at least 50 JPY"),
    ("1000000.00", "usd", "at most 999999.99 USD"),
    ("1500.5", "jpy", "steps of 1"),
    ("25.505", "kwd", "steps of 0.010"),
    ("25.50", "isk", "steps of 1"),
    ("10.00", "xyz", "not a currency this shop accepts"),
])
def test_a_price_stripe_would_refuse_is_refused_when_saved_naming_the_field(shop, tmp_path, price, currency, says):
    field = "currency" if currency == "xyz" else "price"
    runner, owner = shop.test_cli_runner(), shop.test_client()
    cli = runner.invoke(args=["product", "add", "--sku", "CHEAP", "--name", "Cheap", "--price", price,
                              "--currency", currency, "--total", "1"])
    assert cli.exit_code == 1 and f"{field}:" in cli.output and says in cli.output, cli.output
    csv_file = tmp_path / "catalogue.csv"
    csv_file.write_text(f"sku,name,description,price,currency,total\nOK-1,Fine,,5.00,usd,1\n"
                        f"CHEAP,Cheap,,{price},{currency},1\n", encoding="utf-8")
    imported = runner.invoke(args=["catalog", "import", str(csv_file)])
    assert imported.exit_code == 1 and f"row 3, {field}:" in imported.output and says in imported.output
    refused = owner.post("/admin/products", headers=basic(),
                         data=product_form(form_token(owner), sku="CHEAP", price=price, currency=currency))
    assert refused.status_code == 400 and f'data-field="{field}"' in refused.get_data(as_text=True)
    assert db.session.execute(select(Product)).scalars().all() == []


def test_changing_only_the_currency_asks_for_the_price_again(shop):
    runner = shop.test_cli_runner()
    assert runner.invoke(args=["product", "add", "--sku", "MUG", "--name", "Mug", "--price", "12.00",
                               "--total", "1"]).exit_code == 0
    mug = product("MUG")
    alone = runner.invoke(args=["product", "update", str(mug.id), "--currency", "jpy"])
    assert alone.exit_code == 1 and "price: give the price in the new currency too" in alone.output
    both = runner.invoke(args=["product", "update", str(mug.id), "--currency", "jpy", "--price", "1800"])
    assert both.exit_code == 0 and (product("MUG").price, product("MUG").currency) == (1800, "jpy")
    # A price alone is read in the product's own currency.
    assert runner.invoke(args=["product", "update", str(mug.id), "--price", "2000"]).exit_code == 0
    assert product("MUG").price == 2000


def test_amounts_read_as_stripe_charges_them_where_babel_counts_decimals_otherwise():
    # Babel gives HUF and ISK no decimals; Stripe counts both in hundredths.
    assert (money(150000, "huf"), money(150050, "huf"), money(150000, "isk")) == ("HUF1,500", "HUF1,500.50",
                                                                                  "ISK1,500")
    assert (minor_units("1500", "huf"), minor_units("1500", "isk"), minor_units("2500", "ugx")) == (150000, 150000,
                                                                                                  2500)
    assert (money(1800, "usd"), money(1500, "jpy"), money(25500, "kwd")) == ("$18.00", "¥1,500", "KWD25.500")
    assert str(major_units(25500, "kwd")) == "25.500" and price_text(150000, "isk") == "1500"
    with pytest.raises(InvalidAmount):
        minor_units("abc", "usd")


# Stripe's published minimum charge amounts (its "Supported currencies" page, "Minimum and maximum
# charge amounts"), typed here from that page rather than read from the shop's own table, in major
# units, with the smallest step below each that Stripe would refuse.
STRIPE_PUBLISHED_MINIMUMS = {
    "usd": ("0.50", "0.49"), "eur": ("0.50", "0.49"), "gbp": ("0.30", "0.29"), "aud": ("0.50", "0.49"),
    "cad": ("0.50", "0.49"), "chf": ("0.50", "0.49"), "nzd": ("0.50", "0.49"), "sgd": ("0.50", "0.49"),
    "brl": ("0.50", "0.49"), "inr": ("0.50", "0.49"), "aed": ("2.00", "1.99"), "bgn": ("1.00", "0.99"),
    "czk": ("15.00", "14.99"), "dkk": ("2.50", "2.49"), "hkd": ("4.00", "3.99"), "huf": ("175.00", "174.99"),
    "mxn": ("10", "9.99"), "myr": ("2", "1.99"), "nok": ("3.00", "2.99"), "pln": ("2.00", "1.99"),
    "ron": ("2.00", "1.99"), "sek": ("3.00", "2.99"), "thb": ("10", "9.99"), "jpy": ("50", "49"),
}


@pytest.mark.parametrize("code", sorted(STRIPE_PUBLISHED_MINIMUMS))
def test_stripes_published_minimum_is_accepted_and_a_step_below_refused(code):
    minimum, below = STRIPE_PUBLISHED_MINIMUMS[code]
    assert minor_units(minimum, code) >= 1
    with pytest.raises(InvalidAmount):
        minor_units(below, code)


def test_every_accepted_currency_refuses_a_step_below_its_own_minimum():
    # The currencies without a published minimum (the equivalent of USD 0.50): the shop's own table.
    for code, currency in CURRENCIES.items():
        assert minor_units(str(currency.minimum), code) >= currency.step
        with pytest.raises(InvalidAmount):
            minor_units(str(currency.minimum - currency.minimum / 10), code)
