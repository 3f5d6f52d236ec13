"""Security headers on every answer, with a Content-Security-Policy that allows
our own origin and, when Stripe is configured, Stripe's, and nothing else."""

from flask import Flask, Response

STRIPE_JS = "https://js.stripe.com"


def content_security_policy(stripe: bool) -> str:
    script = ["'self'"] + ([STRIPE_JS] if stripe else [])
    frame = [STRIPE_JS, "https://hooks.stripe.com"] if stripe else ["'none'"]
    connect = ["'self'"] + (["https://api.stripe.com"] if stripe else [])
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


def init_app(app: Flask) -> None:
    policy = content_security_policy(stripe=bool(app.config["STOREFRONT"].stripe_secret_key))

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
