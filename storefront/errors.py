"""Errors as the contract shapes them.

JSON ``{"error": code, "message": text, ...}`` for the API, the same as a small
HTML fragment for htmx, and a full page for a browser's navigation.
"""

import psycopg
from flask import Flask, jsonify, make_response, render_template, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, SecurityError

from storefront.htmx import wants_fragment

RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    def __init__(self, http_status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}


def not_found(message: str = "Nothing is here.") -> ApiError:
    """The one way to say 404, shaped as every other refusal: an unknown thing and someone else's alike."""
    return ApiError(404, "not_found", message)


# Werkzeug's status codes, named as our API names them.
_HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_response(error: ApiError):
    if wants_fragment():
        body = render_template("errors/_error.html", error=error)
    elif request.path.startswith("/api/"):
        body = jsonify({"error": error.code, "message": error.message, **error.extra})
    else:
        body = render_template("errors/page.html", error=error)
    return body, error.http_status, error.headers


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)

    @app.errorhandler(SecurityError)
    def untrusted_host(exc: SecurityError):
        # A Host outside TRUSTED_HOSTS: no URL can be built for it, so no page either; and the
        # answer names nothing of the request.
        return jsonify({"error": "invalid_request", "message": "This host is not served here."}), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = _HTTP_CODES.get(exc.code, "http_error")
        response = make_response(error_response(ApiError(exc.code, code, exc.description or exc.name)))
        # Keep what werkzeug adds for us: Allow on a 405, Retry-After on a 429.
        raised_headers = dict(exc.get_headers())
        for header in ("Allow", "Retry-After"):
            if header in raised_headers:
                response.headers[header] = raised_headers[header]
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(psycopg.OperationalError)
    @app.errorhandler(psycopg.InterfaceError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(DisconnectionError)
    @app.errorhandler(PoolTimeout)
    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def dependency_down(exc: Exception):
        # The database (or Redis) is restarting or unreachable: say so, and when to try again.
        app.logger.warning("dependency unavailable on %s %s: %s", request.method, request.path, type(exc).__name__)
        error = ApiError(503, "unavailable", "The shop is briefly unavailable; try again in a few seconds.")
        error.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error_response(error)

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError(500, "internal_error", "Something went wrong on our side."))
