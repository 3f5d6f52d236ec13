"""Storefront: a server-rendered shop that sells limited stock without overselling it."""

from pathlib import Path

from flask import Flask

from storefront.config import Config, ConfigError


def create_app(config: Config | dict | None = None, instance_path: str | None = None) -> Flask:
    """Build the app.

    ``config`` is a Config, or a mapping read in place of the environment
    (tests); by default the process environment is read. ``instance_path``
    moves the embedded defaults' folder (SQLite file, generated secret key).
    """
    app = Flask(
        __name__,
        template_folder="../templates",
        static_folder=None,  # served by storefront.assets, with fingerprinted names
        instance_path=instance_path,
        instance_relative_config=True,
    )

    if not isinstance(config, Config):
        try:
            config = Config.from_env(config, instance_path=app.instance_path)
        except ConfigError as error:
            raise SystemExit(f"storefront: configuration error: {error}") from None
    app.config.from_mapping(config.flask_settings())
    from storefront.extensions import SessionInterface

    app.session_interface = SessionInterface()
    from storefront.params import ProductIdConverter

    app.url_map.converters["product_id"] = ProductIdConverter
    if config.trusted_proxy_count:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Client address and scheme from the proxies' X-Forwarded-* headers (rate limits key on it).
        hops = config.trusted_proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from storefront import assets, cli, database, errors, formatting, jobs, mail, metrics, owners, ratelimit, security
    from storefront.events import bus
    from storefront.extensions import db, migrate
    from storefront.logs import console_logging_unless_configured
    from storefront.payments import gateway

    console_logging_unless_configured()
    db.init_app(app)
    database.init_app(app)
    ratelimit.init_app(app)
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"))
    owners.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    formatting.init_app(app)
    assets.init_app(app)
    metrics.init_app(app)
    cli.init_app(app)
    gateway.init_app(app)
    jobs.init_app(app)
    mail.init_app(app)
    bus.init_app(app)

    from storefront.admin import drops, orders, products  # noqa: F401  (routes join admin.bp)
    from storefront.admin import views as admin
    from storefront.health import bp as health_bp
    from storefront.openapi import bp as openapi_bp
    from storefront.orders.views import bp as orders_bp
    from storefront.payments.views import bp as payments_bp
    from storefront.shop import bp as shop_bp
    from storefront.shop import carts, catalogue, draws, payments, reservations, waiting_room  # noqa: F401  (routes join shop_bp)

    for blueprint in (shop_bp, payments_bp, orders_bp, health_bp, openapi_bp):
        app.register_blueprint(blueprint)
    # Each area's part of every sweep, in this order: holds lapse, lines move, payments are asked about,
    # confirmations go out again (the rate limiter's old windows are forgotten first, from its init_app).
    from storefront.inventory import jobs as inventory_jobs
    from storefront.orders import jobs as order_jobs
    from storefront.payments import jobs as payment_jobs

    for area in (inventory_jobs, payment_jobs, order_jobs):
        area.init_app(app)
    admin.init_app(app)

    from storefront.envelope import RequestEnvelope, RoutedRequest

    app.request_class = RoutedRequest
    stripe = bool(config.stripe_secret_key)
    app.wsgi_app = RequestEnvelope(app.wsgi_app, security.security_headers(stripe),
                                   security.security_headers(stripe, page=False))

    @app.context_processor
    def storefront_settings():
        return {"settings": config}

    return app
