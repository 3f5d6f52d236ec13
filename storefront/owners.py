"""Who owns a hold, a cart, a checkout, a place and an order: a browser, never a fingerprint alone.

The visitor id (FingerprintJS's ``visitorId``) says which device this probably is, and
identical devices share one. So an owner is the pair (visitor id, browser id): the
browser id is a random secret the server issues once, on the first page a browser
loads, in a signed cookie (HttpOnly, SameSite=Lax, Secure over HTTPS, never rotated),
and reads back on every request. A client that sends no such cookie (a script, the
JSON API's examples) has browser id ``""``: one owner per visitor id, apart from every
browser. A cookie that does not verify counts as none.

A fingerprint is not stable (a browser update, a phone's changing screen or fonts give
another), and a browser must keep what it has. So the first visitor id a browser names
is written into its cookie beside its secret (signed with it), and from then on that
browser's owner is (that first visitor id, its secret), whatever visitor id it sends
later: every table keeps its (visitor id, browser id) pair, and nothing else changes.
A browser whose cookie came before this kept no visitor id: it keeps the first it names
now (the one it has been sending, which owns what it has).

The hold limits also need the client's address: the owners that share a visitor id and
an address are one person's private windows, and every owner behind one address (an IPv4
address or an IPv6 /64) shares MAX_HELD_UNITS_PER_ADDRESS (see inventory/grants.py).
"""

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass

from flask import Flask, Response, current_app, request
from itsdangerous import BadSignature, Signer

from storefront.htmx import wants_fragment
from storefront.params import VISITOR_ID, optional_visitor, requesting_visitor, visitor_id

COOKIE_NAME = "storefront_browser"
COOKIE_MAX_AGE_SECONDS = 10 * 365 * 24 * 3600  # kept until the shopper clears site data
NO_BROWSER = ""


@dataclass(frozen=True)
class Owner:
    visitor_id: str
    browser_id: str


def _signer() -> Signer:
    return current_app.extensions["storefront.browser_signer"]


_BROWSER_KEY = "storefront.browser"
_PIN_KEY = "storefront.pin_visitor"


def _browser() -> tuple[str, str | None]:
    """This request's browser id and the visitor id its cookie keeps (None before it named one);
    ("", None) without a cookie, or with one that does not verify. Read once a request."""
    environ = request.environ
    found = environ.get(_BROWSER_KEY)
    if found is None:
        found = (NO_BROWSER, None)
        # A script calling the API sends no cookie at all: nothing to parse.
        cookie = request.cookies.get(COOKIE_NAME) if f"{COOKIE_NAME}=" in environ.get("HTTP_COOKIE", "") else None
        if cookie:
            try:
                secret, _, kept = _signer().unsign(cookie).decode().partition(":")
                found = (secret, kept if VISITOR_ID.match(kept) else None)
            except (BadSignature, UnicodeDecodeError):
                pass
        environ[_BROWSER_KEY] = found
    return found


def browser_id() -> str:
    """This request's browser id, from its signed cookie; "" without one (or with a forged one)."""
    return _browser()[0]


def _owner(sent_visitor: str) -> Owner:
    secret, kept = _browser()
    if not secret:
        return Owner(sent_visitor, NO_BROWSER)
    if kept is None:  # the first visitor id this browser names is its own from now on
        request.environ[_PIN_KEY] = sent_visitor
        return Owner(sent_visitor, secret)
    return Owner(kept, secret)


def requesting_owner() -> Owner:
    """The owner a read or a release speaks for: X-Visitor-Id (or ?userId=), checked, and the cookie."""
    return _owner(requesting_visitor())


def owner_of(visitor) -> Owner:
    """The owner for a visitor id given in a body (checked), with this request's cookie."""
    return _owner(visitor_id(visitor))


def owner_if_named() -> Owner | None:
    """The owner, when the request names a valid visitor id (a page showing its own hold); else None."""
    sent = optional_visitor()
    return _owner(sent) if sent else None


def address_key(remote_addr: str | None) -> str:
    """The client address as the limits count it: an IPv4 address, or the /64 an IPv6 address is
    in (one household's or one phone's network hands its devices addresses from one /64)."""
    if not remote_addr:
        return ""
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return remote_addr[:45]
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def address_block(address: str) -> str | None:
    """The IPv6 /48 an address key (a /64) is in: every per-address limit applies to it as a whole
    too, at IPV6_BLOCK_FACTOR times its value (one free tunnel hands out a /48). None for IPv4."""
    if "/" not in address:
        return None
    try:
        return str(ipaddress.IPv6Network(address).supernet(new_prefix=48))
    except ValueError:
        return None


def client_address() -> str:
    """This request's client address key (behind TRUSTED_PROXY_COUNT proxies, read from
    X-Forwarded-For by ProxyFix in create_app)."""
    return address_key(request.remote_addr)


def init_app(app: Flask) -> None:
    app.extensions["storefront.browser_signer"] = Signer(
        app.config["SECRET_KEY"], salt="storefront.browser", digest_method=hashlib.sha256)

    def set_browser_cookie(response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE_NAME, _signer().sign(value).decode(), max_age=COOKIE_MAX_AGE_SECONDS,
            httponly=True, samesite="Lax", secure=request.is_secure, path="/",
        )

    @app.after_request
    def issue_browser_cookie(response: Response) -> Response:
        # The first page a browser loads gives it its secret; scripts calling the JSON API get
        # none, and neither does an answer without a page (a 304 to a conditional poll, say).
        pinned = request.environ.get(_PIN_KEY)
        if pinned is not None:  # the browser named its first visitor id: its cookie keeps it
            set_browser_cookie(response, f"{browser_id()}:{pinned}")
        elif (response.status_code == 200 and request.method == "GET" and response.mimetype == "text/html"
                and not wants_fragment() and not browser_id()):
            set_browser_cookie(response, secrets.token_urlsafe(24))
        return response
