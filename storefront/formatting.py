"""How money and time read on the pages."""

from datetime import timedelta
from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision
from flask import Flask

from storefront.clock import isoformat_z
from storefront.inventory.holds import status_of


def money(minor_units: int, currency: str) -> str:
    """``1800, "usd"`` → ``$18.00``; the currency's own number of decimals."""
    code = currency.upper()
    amount = Decimal(minor_units).scaleb(-get_currency_precision(code))
    return format_currency(amount, code, locale="en_US")


def minutes_seconds(remaining: timedelta) -> str:
    seconds = max(0, int(remaining.total_seconds()))
    return f"{seconds // 60}:{seconds % 60:02d}"


def init_app(app: Flask) -> None:
    app.add_template_filter(money)
    app.add_template_filter(minutes_seconds)
    app.add_template_filter(isoformat_z)
    app.add_template_global(status_of, "hold_status")
