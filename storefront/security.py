"""What keeps other sites out: a refusal of state-changing requests made by another site's page,
and security headers on every answer, with a Content-Security-Policy that allows
our own origin and, when Stripe is configured, what Stripe's integration security guide
lists for Stripe.js and Elements (docs.stripe.com/security/guide#content-security-policy),
and nothing else. The Address Element's autocomplete loads from Google Maps."""

from urllib.parse import urlsplit

STRIPE_JS = ("https://js.stripe.com", "https://*.js.stripe.com")
MAPS = "https://maps.googleapis.com"


def content_security_policy(stripe: bool) -> str:
    script = ["'self'"] + ([*STRIPE_JS, MAPS] if stripe else [])
    frame = [*STRIPE_JS, "https://hooks.stripe.com"] if stripe else ["'none'"]
    connect = ["'self'"] + (["https://api.stripe.com", MAPS] if stripe else [])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {' '.join(script)}",
            "style-src 'self'",
            "img-src 'self' data:" + (" https://*.stripe.com" if stripe else ""),
            f"frame-src {' '.join(frame)}",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


# An answer no browser shows as a page (JSON, or a fragment htmx fetched to swap into one) runs
# and loads nothing of its own: a browser applies a policy to documents and workers, never to
# what a script fetched. Its policy allows nothing and no framing (OWASP's REST Security Cheat
# Sheet), so that opened as a page nothing in it would run either, in a tenth of a page's
# bytes on every hold and every poll. Pages and files (a worker's script among them) keep theirs.
NOT_A_PAGE_POLICY = "default-src 'none'; frame-ancestors 'none'"


def security_headers(stripe: bool, *, page: bool = True) -> list[tuple[str, str]]:
    """The headers every answer carries unless it sets its own (storefront/envelope.py adds them):
    a page's (and a file's), or those of an answer that is not a page."""
    return [
        ("Content-Security-Policy", content_security_policy(stripe) if page else NOT_A_PAGE_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
    ]


# Requests that change something; a browser marks where they come from (Fetch Metadata, Origin).
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Stripe calls the webhook from its servers, not from a page: its signature is what proves it.
CROSS_SITE_EXEMPT = frozenset({"payments.stripe_webhook"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple | None:
    """(scheme, host, port) of ``scheme://host[:port]``, the port filled in; None if it does not parse."""
    parts = urlsplit(url.strip().lower())
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or _DEFAULT_PORTS[parts.scheme]


def comes_from_another_site(environ, request) -> bool:
    """Whether a browser says another site's page made this request: ``Sec-Fetch-Site: cross-site``,
    or an ``Origin`` that is not the shop's own (``null`` included). A script that sends neither
    is not a browser acting for someone else."""
    if environ.get("HTTP_SEC_FETCH_SITE", "").lower() == "cross-site":
        return True
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return False
    sent = _origin(origin)
    return sent is None or sent != _origin(f"{request.scheme}://{request.host}")


def init_app(app) -> None:
    from flask import request

    from storefront.errors import ApiError

    @app.before_request
    def refuse_cross_site_changes():
        environ = request.environ
        if environ["REQUEST_METHOD"] not in STATE_CHANGING or request.endpoint in CROSS_SITE_EXEMPT:
            return None
        if comes_from_another_site(environ, request):
            raise ApiError(403, "cross_site", "This request came from another site's page; nothing was changed.")
        return None
