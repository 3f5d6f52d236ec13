"""storefront.htmx: which requests get a fragment, read from the headers htmx sends, absent,
set, and otherwise; and the one view-level consequence, the Vary header."""

import pytest

from storefront.htmx import wants_fragment
from tests.factories import make_product


@pytest.mark.parametrize("headers, fragment", [
    ({}, False),
    ({"HX-Request": "true"}, True),
    ({"HX-Request": "TRUE"}, True),  # header values compare without case
    ({"HX-Request": "false"}, False),
    ({"HX-Request": ""}, False),
    # Boosted navigations and history restores need the whole page, not a piece of it.
    ({"HX-Request": "true", "HX-Boosted": "true"}, False),
    ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),
    ({"HX-Request": "true", "HX-Boosted": "false", "HX-History-Restore-Request": "false"}, True),
    ({"HX-Boosted": "true"}, False),
])
def test_a_fragment_only_for_an_htmx_request_that_is_not_a_navigation(app, headers, fragment):
    with app.test_request_context("/", headers=headers):
        assert wants_fragment() is fragment


@pytest.mark.parametrize("headers, template", [
    ({}, "application/json"),
    ({"HX-Request": "true"}, "text/html"),
    ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, "text/html"),  # HX-Request alone decides
])
def test_the_stock_check_answers_by_the_same_rule_and_varies_on_it(client, headers, template):
    product = make_product(total=2)
    response = client.get(f"/api/inventory/check/{product.id}", headers=headers)
    assert response.mimetype == template
    assert "HX-Request" in response.headers["Vary"]
