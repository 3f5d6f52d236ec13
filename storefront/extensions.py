"""Extension objects, bound to the app in create_app(); how the shop reaches its database beyond
the ORM session is ``database.py``'s."""

from flask import request
from flask.sessions import SecureCookieSessionInterface
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

# Named constraints, so that migrations can drop and alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate(render_as_batch=True, compare_type=True)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions (the admin's CSRF token lives in one), with the signing
    serializer built once per app instead of on every request: building it was a sixth of
    a /healthz answer. The key cannot change while the app runs, so one is enough.

    Only the admin uses a session, so nearly every request carries no session cookie: that
    is seen in the raw Cookie header, without parsing every cookie into a dict first."""

    def open_session(self, app, request):
        if f"{self.get_cookie_name(app)}=" not in request.environ.get("HTTP_COOKIE", ""):
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app):
        # Secure whenever the page came over HTTPS (behind a proxy: its X-Forwarded-Proto).
        return request.is_secure

    def get_signing_serializer(self, app):
        serializer = app.extensions.get("storefront.session_serializer")
        if serializer is None:
            serializer = app.extensions["storefront.session_serializer"] = super().get_signing_serializer(app)
        return serializer
