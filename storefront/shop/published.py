"""What a drop publishes for everyone alike (a line's or a draw's standing, its list): shared answers,
the same bytes for every reader, that a cache in front may keep for a second (``SHARED``), with an
ETag so that a reader who has them gets a 304."""

import csv
import hashlib
import io
import json

from flask import current_app, render_template, request

from storefront.envelope import SHARED
from storefront.htmx import wants_shared_fragment


def _etagged(body: str, tag: str):
    """(ETag, headers, whether the reader has these bytes already)."""
    etag = f'"{tag}{hashlib.sha256(body.encode()).hexdigest()[:20]}"'
    headers = {"ETag": etag, "Cache-Control": SHARED}
    return headers, etag in request.headers.get("If-None-Match", "")


def shared_standing(answer: dict, tag: str, fragment: str, **context):
    """How a drop stands: its JSON, or with ``HX-Request`` its ``fragment`` rendered with ``context``.
    One ETag per answer and per form (a fragment and the JSON are different bytes)."""
    as_fragment = wants_shared_fragment()
    headers, unchanged = _etagged(json.dumps(answer, sort_keys=True) + ("f" if as_fragment else "j"), tag)
    if unchanged:
        return "", 304, headers
    if as_fragment:
        return render_template(fragment, **context), 200, headers
    return answer, 200, headers


def shared_csv(header: list[str], rows, tag: str):
    """A published list as CSV."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    body = out.getvalue()
    headers, unchanged = _etagged(body, tag)
    if unchanged:
        return "", 304, headers
    return current_app.response_class(body, 200, headers, mimetype="text/csv")
