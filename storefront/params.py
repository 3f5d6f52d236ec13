"""Reading request parameters: the body (JSON or form), integers, the visitor id.

Anything missing or malformed becomes a 400 that names the field, never a 500.
"""

import json
import re
import uuid
from collections.abc import Mapping

from flask import request
from werkzeug.datastructures import MultiDict
from werkzeug.routing import IntegerConverter

from storefront.errors import ApiError, not_found

VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request", message, field=field)


FORMS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def request_body() -> Mapping:
    """The body as a mapping: a JSON object, or the submitted form. A body of any other type
    (or of none said: curl's --data-binary, a script's bare POST) is a 415 naming Content-Type,
    not a form read as empty and answered "productId is required"."""
    if request.is_json:
        # json.loads on the (cached) body, as get_json(silent=True) does, without its second
        # content-type check and provider round: every hold reads its body here.
        try:
            data = json.loads(request.get_data())
        except (ValueError, RecursionError):  # malformed, not UTF-8/16/32, or nested past the parser
            raise invalid("body", "The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise invalid("body", "The body must be a JSON object.")
        return data
    if request.mimetype not in FORMS and request.content_length:
        raise ApiError(415, "unsupported_media_type",
                       "Send the body as JSON (Content-Type: application/json) or as a form.", header="Content-Type")
    return request.form


def integer_field(data: Mapping, name: str, *, low: int, high: int | None = None, default: int | None = None) -> int:
    """A whole number from a JSON body (a JSON integer: not a string, null or true) or from a
    submitted form (digits, every form value being text). Absent: ``default``, or a 400."""
    form = isinstance(data, MultiDict)
    value = data.get(name)
    if name not in data or (form and value == ""):
        if default is not None:
            return default
        raise invalid(name, f"{name} is required.")
    if form and isinstance(value, str):
        if not re.fullmatch(r"\s*-?\d{1,18}\s*", value):
            raise invalid(name, f"{name} must be a whole number.")
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one kind of number: 2.0 is the integer 2
    # bool is an int in Python, but `true` is not a quantity.
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(name, f"{name} must be a whole number.")
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise invalid(name, f"{name} must be {bounds}.")
    return value


def visitor_id(value) -> str:
    if not isinstance(value, str) or not VISITOR_ID.match(value):
        raise invalid("userId", "userId must be 8 to 128 characters of A-Z a-z 0-9 _ -.")
    return value


def requesting_visitor() -> str:
    """The visitor a GET or DELETE speaks for: the X-Visitor-Id header, or ?userId=."""
    return visitor_id(request.headers.get("X-Visitor-Id") or request.args.get("userId"))


def optional_visitor() -> str | None:
    """The visitor, if the request names a valid one; pages use it to show their own hold."""
    value = request.headers.get("X-Visitor-Id") or request.args.get("userId")
    return value if isinstance(value, str) and VISITOR_ID.match(value) else None


def optional_uuid(data: Mapping, name: str) -> uuid.UUID | None:
    """A UUID the client drew (a queue entry's id), in its canonical lower-case text; absent: None."""
    value = data.get(name)
    if value is None or value == "":
        return None
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != value.strip().lower() or parsed.int == 0:
        raise invalid(name, f"{name} must be a UUID like 0b8f3c2e-5d1a-4c8e-9f2b-7a6d5e4c3b2a.")
    return parsed


class ProductIdConverter(IntegerConverter):
    """``<product_id:...>`` in a URL: 1 to 2³¹−1 (a PostgreSQL integer), written one way only: ASCII
    digits without leading zeros. Any other spelling (``05``, other scripts' digits) is a 404, so that
    one product has one URL and one key in a shared cache."""

    regex = r"[1-9][0-9]{0,9}"

    def __init__(self, url_map):
        super().__init__(url_map, min=1, max=2**31 - 1)


def reservation_id(value: str) -> uuid.UUID:
    """A reservation id from the URL; anything that is not a UUID is simply unknown."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found("No such reservation.") from None
