"""Static files under fingerprinted names, cached for a year.

Templates ask ``asset_url("vendor/htmx.min.js")`` and get
``/static/vendor/htmx.min.3f2a9c1d.js``: the name carries a hash of the content,
so a changed file gets a new URL and browsers may keep every URL forever
(``Cache-Control: public, max-age=31536000, immutable``). The plain names keep
working, with a short cache, for anything that links them directly. Product photos
uploaded in the admin (``uploads/…``, under the instance folder) are named by their
hash already, and served from ``/media/`` with the same year-long caching.
"""

import hashlib
import re
from functools import lru_cache
from pathlib import Path

from flask import Flask, send_from_directory, url_for
from werkzeug.security import safe_join

from storefront.errors import not_found

ONE_YEAR = 365 * 24 * 3600
_FINGERPRINTED = re.compile(r"^(?P<stem>.+)\.(?P<digest>[0-9a-f]{10})(?P<suffix>\.[A-Za-z0-9]+)$")


def upload_root(app: Flask) -> Path:
    """Where uploaded product photos live: under the instance folder, outside the code."""
    return Path(app.instance_path) / "uploads"


def init_app(app: Flask) -> None:
    static_root = Path(app.root_path).parent / "static"
    uploads = upload_root(app)

    @lru_cache(maxsize=None)
    def digest_of(filename: str) -> str | None:
        path = safe_join(str(static_root), filename)
        if path is None or not Path(path).is_file():
            return None
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]

    def asset_url(filename: str) -> str:
        if filename.startswith("uploads/"):
            # An uploaded photo's name is already the hash of its content.
            return url_for("media", filename=filename.removeprefix("uploads/"))
        digest = digest_of(filename)
        stem, dot, suffix = filename.rpartition(".")
        if digest is None or not dot:
            return url_for("static", filename=filename)
        return url_for("static", filename=f"{stem}.{digest}.{suffix}")

    @app.get("/static/<path:filename>", endpoint="static")
    def fingerprinted_static(filename: str):
        match = _FINGERPRINTED.match(filename)
        if match:
            original = f"{match['stem']}{match['suffix']}"
            if digest_of(original) == match["digest"]:
                response = send_from_directory(static_root, original, max_age=ONE_YEAR)
                response.cache_control.immutable = True
                response.cache_control.public = True
                return response
            raise not_found("No such file.")
        return send_from_directory(static_root, filename, max_age=3600)

    @app.get("/media/<path:filename>", endpoint="media")
    def uploaded_media(filename: str):
        response = send_from_directory(uploads, filename, max_age=ONE_YEAR)
        response.cache_control.immutable = True
        response.cache_control.public = True
        return response

    app.add_template_global(asset_url)
