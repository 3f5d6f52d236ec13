"""Security headers on every answer, with a Content-Security-Policy that allows
our own origin and, when Stripe is configured, what Stripe's integration security guide
lists for Stripe.js and Elements (docs.stripe.com/security/guide#content-security-policy),
and nothing else. The Address Element's autocomplete loads from Google Maps."""


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


def security_headers(stripe: bool) -> list[tuple[str, str]]:
    """The headers every answer carries unless it sets its own (storefront/envelope.py adds them)."""
    return [
        ("Content-Security-Policy", content_security_policy(stripe)),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
    ]
