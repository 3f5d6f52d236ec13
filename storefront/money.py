"""Money: the currencies the shop accepts, and the one converter between major and minor units.

Amounts are stored and sent to Stripe as integers in the currency's minor unit *as Stripe
defines it* (docs.stripe.com/currencies), which is not always ISO 4217's or Babel's:

- zero-decimal currencies (JPY, KRW, UGX, ...) are counted in whole units: ``1500`` is ¥1500;
- three-decimal currencies (BHD, JOD, KWD, OMR, TND) in thousandths, and Stripe asks for the
  last digit to be 0: ``25500`` is 25.500 KWD, ``25505`` is refused;
- special cases: ISK is two-decimal in the API although whole krónur are charged (amounts a
  multiple of 100); HUF and TWD are two-decimal in the API (Babel gives HUF none).

Owners type prices in major units everywhere (CLI, CSV, admin): ``25.00`` dollars, ``1500``
yen, ``25.500`` dinars. A price Stripe would refuse (under its minimum charge, over its
maximum, finer than the currency allows) is refused when the product is saved.

The table below is every currency the shop accepts. Minimums are Stripe's published minimum
charge amounts where it lists one; where it does not (its rule is "the equivalent of USD 0.50"),
a round amount a little above that, so a price that passes here is one Stripe takes.
"""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# Stripe: "The amount value supports up to eight digits" (99999999 minor units).
MAX_MINOR_UNITS = 99_999_999


@dataclass(frozen=True)
class Currency:
    code: str  # lower case, as Stripe's API takes it
    exponent: int  # decimals in Stripe's minor unit
    minimum: Decimal  # the smallest charge, in major units
    step: int = 1  # minor units must be a multiple of this (KWD: 10, ISK: 100)


def _currency(code: str, exponent: int, minimum: str, step: int = 1) -> tuple[str, Currency]:
    return code, Currency(code, exponent, Decimal(minimum), step)


# (code, Stripe's decimals, minimum charge in major units[, multiple of minor units])
CURRENCIES: dict[str, Currency] = dict([
    # Stripe's published minimum charge amounts.
    _currency("usd", 2, "0.50"), _currency("eur", 2, "0.50"), _currency("gbp", 2, "0.30"),
    _currency("aud", 2, "0.50"), _currency("cad", 2, "0.50"), _currency("chf", 2, "0.50"),
    _currency("nzd", 2, "0.50"), _currency("sgd", 2, "0.50"), _currency("brl", 2, "0.50"),
    _currency("inr", 2, "0.50"), _currency("aed", 2, "2.00"), _currency("bgn", 2, "1.00"),
    _currency("czk", 2, "15.00"), _currency("dkk", 2, "2.50"), _currency("hkd", 2, "4.00"),
    _currency("huf", 2, "175.00"), _currency("mxn", 2, "10.00"), _currency("myr", 2, "2.00"),
    _currency("nok", 2, "3.00"), _currency("pln", 2, "2.00"), _currency("ron", 2, "2.00"),
    _currency("sek", 2, "3.00"), _currency("thb", 2, "10.00"), _currency("jpy", 0, "50"),
    # No published minimum: the equivalent of USD 0.50, rounded up.
    _currency("krw", 0, "1000"), _currency("ugx", 0, "2500"), _currency("twd", 2, "20.00"),
    _currency("isk", 2, "100", step=100),
    _currency("bhd", 3, "0.200", step=10), _currency("jod", 3, "0.400", step=10),
    _currency("kwd", 3, "0.200", step=10), _currency("omr", 3, "0.200", step=10),
    _currency("tnd", 3, "2.000", step=10),
])


class InvalidAmount(ValueError):
    """A price or currency Stripe would refuse; the message says why, for the owner."""


def currency(code: str) -> Currency:
    found = CURRENCIES.get((code or "").strip().lower())
    if found is None:
        raise InvalidAmount(f"{code!r} is not a currency this shop accepts "
                            f"({', '.join(sorted(c.upper() for c in CURRENCIES))})")
    return found


def major_units(minor_units: int, code: str) -> Decimal:
    """``1800, "usd"`` → ``Decimal("18.00")``; ``1500, "jpy"`` → ``Decimal("1500")``."""
    return Decimal(minor_units).scaleb(-currency(code).exponent)


def price_text(minor_units: int, code: str) -> str:
    """The price as an owner types it back into a form: ``25.00``, ``1500``, ``25.500``."""
    money = currency(code)
    if money.step == 10 ** money.exponent:  # whole units only (ISK)
        return str(minor_units // money.step)
    return f"{major_units(minor_units, code):f}"


def minor_units(typed: str, code: str) -> int:
    """A price typed in major units → Stripe's minor units. Raises InvalidAmount."""
    money = currency(code)
    try:
        amount = Decimal(str(typed).strip())
    except InvalidOperation:
        raise InvalidAmount(f"{typed!r} is not an amount like {_example(money)}") from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidAmount(f"must be more than 0, like {_example(money)}")
    minor = amount.scaleb(money.exponent)
    if minor != minor.to_integral_value() or int(minor) % money.step:
        step = Decimal(money.step).scaleb(-money.exponent)
        raise InvalidAmount(f"{money.code.upper()} prices go in steps of {step.normalize() if step >= 1 else step}, "
                            f"like {_example(money)}")
    minor = int(minor)
    if amount < money.minimum:
        raise InvalidAmount(f"must be at least {money.minimum} {money.code.upper()}, Stripe's smallest charge")
    if minor > MAX_MINOR_UNITS:
        raise InvalidAmount(f"must be at most {price_text(MAX_MINOR_UNITS - MAX_MINOR_UNITS % money.step, money.code)} "
                            f"{money.code.upper()}, Stripe's largest charge")
    return minor


def _example(money: Currency) -> str:
    return {0: "1500", 3: "25.500"}.get(money.exponent, "25" if money.step == 100 else "25.00")
