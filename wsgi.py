"""The web process in production: ``gunicorn wsgi:app``."""

from storefront import create_app
from storefront.logs import configure_logging

configure_logging()
app = create_app()
