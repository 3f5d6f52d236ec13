"""/api/openapi.json is true to the contract and to the app, and fuzzing it finds no 5xx."""

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.factories import make_product, visitor

# The contract's JSON API (shared/CONTRACT.md), route by route.
CONTRACT_ROUTES = {
    ("get", "/api/inventory/check/{productId}"),
    ("post", "/api/reservations"),
    ("get", "/api/reservations/{reservationId}"),
    ("delete", "/api/reservations/{reservationId}"),
    ("post", "/api/webhooks/stripe"),
    ("get", "/api/cart"),
    ("post", "/api/cart/items"),
    ("delete", "/api/cart/items/{productId}"),
    ("post", "/api/checkouts"),
    ("get", "/api/orders"),
}


def documented(client) -> set:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    return {(method, path) for path, operations in paths.items() for method in operations}


def test_every_contract_route_is_documented(client):
    assert CONTRACT_ROUTES <= documented(client)


def test_every_api_route_of_the_app_is_documented(app, client):
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = rule.rule.replace("<product_id:product_id>", "{productId}").replace("<reservation>", "{reservationId}")
            path = path.replace("<checkout>", "{checkoutId}")
            served |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served <= documented(client)


def test_generated_requests_never_get_a_5xx(app):
    """schemathesis generates requests for every documented operation (run in-process, through WSGI)."""
    product = make_product(total=1000)
    assert app.test_client().post("/api/reservations", json={"productId": product.id, "userId": visitor(1)}
                                  ).status_code == 201
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def never_a_server_error(case):
            response = case.call()
            assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}"

        never_a_server_error()
        checked.append(operation.label)
    assert {f"{method.upper()} {path}" for method, path in CONTRACT_ROUTES} <= set(checked)
