"""The only module that reads or writes HX-* headers."""

from dataclasses import dataclass
from urllib.parse import unquote

from flask import request

# Every URL may answer htmx with a fragment, so caches must key on the header
# (storefront/envelope.py adds it to every answer).
VARY_ON_HTMX = "HX-Request"


@dataclass(frozen=True)
class HtmxDetails:
    request: bool
    boosted: bool
    history_restore: bool
    target: str | None
    trigger: str | None
    current_url: str | None

    @property
    def wants_fragment(self) -> bool:
        # Boosted navigations and history restores need the whole page, not a piece of it.
        return self.request and not self.boosted and not self.history_restore

    @classmethod
    def from_headers(cls, headers) -> "HtmxDetails":
        def flag(name):
            return headers.get(name, "").lower() == "true"

        def text(name):
            value = headers.get(name)
            if value is None:
                return None
            # HX-Current-URL and friends may arrive URI-encoded (HX-*-URI-AutoEncoded).
            if headers.get(f"{name}-URI-AutoEncoded", "").lower() == "true":
                value = unquote(value)
            return value

        return cls(
            request=flag("HX-Request"),
            boosted=flag("HX-Boosted"),
            history_restore=flag("HX-History-Restore-Request"),
            target=text("HX-Target"),
            trigger=text("HX-Trigger"),
            current_url=text("HX-Current-URL"),
        )


def htmx() -> HtmxDetails:
    """The htmx details of the current request, read once per request."""
    # Kept in the WSGI environ, which lives exactly as long as the request.
    details = request.environ.get("storefront.htmx")
    if details is None:
        details = request.environ["storefront.htmx"] = HtmxDetails.from_headers(request.headers)
    return details


def wants_fragment() -> bool:
    """An htmx request for a piece of a page (not a boosted navigation or a history restore).

    Read straight from the WSGI environ: it is asked on every hot request."""
    environ = request.environ
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
