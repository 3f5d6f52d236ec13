"""The only module that reads or writes HX-* headers."""

from flask import request

# Every URL may answer htmx with a fragment, so caches must key on the header
# (storefront/envelope.py adds it to every answer).
VARY_ON_HTMX = "HX-Request"


def wants_fragment() -> bool:
    """An htmx request for a piece of a page (not a boosted navigation or a history restore).

    Read straight from the WSGI environ: it is asked on every hot request."""
    return asks_for_fragment(request.environ)


def wants_shared_fragment() -> bool:
    """For a shared answer (the stock check, a drop's line): its fragment exactly when ``HX-Request:
    true`` is sent, whatever else comes with it. A shared cache keys these answers on that header
    alone, so no other header (``HX-Boosted``, ``HX-History-Restore-Request``) may change them: one
    such request would otherwise hand a crowd's Buy buttons JSON for the cache's second."""
    return request.environ.get("HTTP_HX_REQUEST", "").lower() == "true"


def asks_for_fragment(environ) -> bool:
    """:func:`wants_fragment` from a WSGI environ, for what runs around Flask (storefront/envelope.py)."""
    return (environ.get("HTTP_HX_REQUEST", "").lower() == "true"
            and environ.get("HTTP_HX_BOOSTED", "").lower() != "true"
            and environ.get("HTTP_HX_HISTORY_RESTORE_REQUEST", "").lower() != "true")


def retarget(selector: str, swap: str = "innerHTML") -> dict[str, str]:
    """Headers that send this answer somewhere else than the request's own target
    (an error into the form that caused it, say). ``selector`` may be relative: ``find .error``."""
    return {"HX-Retarget": selector, "HX-Reswap": swap}


def trigger(event: str) -> dict[str, str]:
    """Headers that fire ``event`` on the page once this answer is swapped in (other parts listen)."""
    return {"HX-Trigger": event}
