"""storefront.htmx reads every HX-* header, absent, set, and URI-encoded."""

from werkzeug.datastructures import Headers

from storefront.htmx import HtmxDetails


def test_no_htmx_headers_means_a_plain_request():
    details = HtmxDetails.from_headers(Headers())
    assert (details.request, details.boosted, details.history_restore) == (False, False, False)
    assert (details.target, details.trigger, details.current_url) == (None, None, None)
    assert not details.wants_fragment


def test_an_htmx_request_wants_a_fragment_unless_boosted_or_restoring_history():
    assert HtmxDetails.from_headers(Headers({"HX-Request": "true"})).wants_fragment
    assert not HtmxDetails.from_headers(Headers({"HX-Request": "true", "HX-Boosted": "true"})).wants_fragment
    restore = Headers({"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert not HtmxDetails.from_headers(restore).wants_fragment
    assert not HtmxDetails.from_headers(Headers({"HX-Request": "false"})).wants_fragment


def test_values_are_read_and_uri_encoded_ones_decoded():
    details = HtmxDetails.from_headers(Headers({
        "HX-Request": "true", "HX-Target": "stock-1", "HX-Trigger": "buy",
        "HX-Current-URL": "http%3A%2F%2Fshop%2Fproducts%2F%C3%A9t%C3%A9", "HX-Current-URL-URI-AutoEncoded": "true",
    }))
    assert (details.target, details.trigger) == ("stock-1", "buy")
    assert details.current_url == "http://shop/products/été"
    raw = HtmxDetails.from_headers(Headers({"HX-Current-URL": "http%3A%2F%2Fshop"}))
    assert raw.current_url == "http%3A%2F%2Fshop"  # not marked encoded: left as sent
