"""What every answer carries, done once per request around the Flask app.

A request id (the caller's ``X-Request-Id`` if well formed, else a new one) set
for the logs while the request runs and echoed in the answer; the security
headers (JSON and htmx's fragments get a policy that allows nothing, pages and
files the pages' own); ``Vary: HX-Request``; ``Cache-Control: private, no-store``
on an answer that says nothing of its own caching (a hold, a cart, a page: a
shared cache keeps only what says it may, the stock check and a drop's line,
which say ``SHARED``); and the request metrics (count and latency by route).
One WSGI middleware on the raw header list instead of five Flask request hooks: the same work with less of it per request (in-process, /healthz
went from about 140 to 100 µs with the session change; bench/holds.py measures
the shop's /healthz against a bare Flask route).
"""

import itertools
import os
import secrets
import time

from flask import Request

from storefront import metrics
from storefront.htmx import VARY_ON_HTMX, asks_for_fragment
from storefront.logs import VALID_REQUEST_ID, request_id_var

ROUTE_KEY = "storefront.route"
# Over HTTPS only (RFC 6797 7.2: a browser ignores it over plain HTTP). A year; the shop's own host only,
# since other hosts under its domain are not the shop's to promise.
HSTS = ("Strict-Transport-Security", "max-age=31536000")
PRIVATE = ("Cache-Control", "private, no-store")
# A shared answer: the same bytes for every reader, so a shared cache (nginx, a CDN) may answer a
# crowd's polls for a second; every browser revalidates (304 with the ETag).
SHARED = "public, max-age=0, s-maxage=1"


class RequestIds:
    """New request ids: 32 hex digits, a random prefix per process and a counter. Unique like
    a uuid4's hex, without a trip to the kernel's random source on every request."""

    def __init__(self):
        self._pid = None

    def __call__(self) -> str:
        if self._pid != os.getpid():  # a forked worker starts its own sequence
            self._pid, self._prefix, self._counter = os.getpid(), secrets.token_hex(8), itertools.count(1)
        return f"{self._prefix}{next(self._counter):016x}"


new_request_id = RequestIds()


class RoutedRequest(Request):
    """Flask's request, leaving its matched rule in the WSGI environ, where the envelope
    finds it once Flask has closed the request (Flask drops its own reference then)."""

    @property
    def url_rule(self):
        return self.__dict__.get("_url_rule")

    @url_rule.setter
    def url_rule(self, rule):
        self.__dict__["_url_rule"] = rule
        if rule is not None:
            self.environ[ROUTE_KEY] = rule.rule


class RequestEnvelope:
    def __init__(self, wsgi_app, page_headers: list[tuple[str, str]], not_a_page_headers: list[tuple[str, str]]):
        self.wsgi_app = wsgi_app
        self.page_headers = page_headers
        self.not_a_page_headers = not_a_page_headers
        self.security_names = {name.lower() for name, _ in page_headers}

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if incoming and VALID_REQUEST_ID.match(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        fragment = asks_for_fragment(environ)
        answered = []

        def start(status, headers, exc_info=None):
            present = set()
            security = self.not_a_page_headers if fragment else self.page_headers
            for name, value in headers:
                name = name.lower()
                present.add(name)
                # JSON, and a shared answer (JSON or a fragment, never a page, whatever HX-* came with it).
                if (name == "content-type" and "json" in value) or (name == "cache-control" and value == SHARED):
                    security = self.not_a_page_headers
            headers.append(("X-Request-Id", request_id))
            if "vary" in present:
                headers[:] = [(name, f"{value}, {VARY_ON_HTMX}" if name.lower() == "vary"
                               and VARY_ON_HTMX not in value else value) for name, value in headers]
            else:
                headers.append(("Vary", VARY_ON_HTMX))
            if "cache-control" not in present:
                headers.append(PRIVATE)
            # A 304 updates only what caching needs; the stored answer keeps its own (RFC 9110, 15.4.5).
            if not status.startswith("304"):
                headers.extend(security if self.security_names.isdisjoint(present)
                               else [h for h in security if h[0].lower() not in present])
                # Read now, not on the way in: the proxy's X-Forwarded-Proto has been applied by then.
                if environ.get("wsgi.url_scheme") == "https":
                    headers.append(HSTS)
            answered.append(status)
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, start)
        finally:
            request_id_var.reset(token)
            metrics.observe_request(environ["REQUEST_METHOD"], environ.get(ROUTE_KEY, "unmatched"),
                                    answered[0][:3] if answered else "500", time.perf_counter() - started)
