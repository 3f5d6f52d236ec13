"""The store on its embedded defaults (SQLite under instance/, no services): a newcomer's first run."""

from storefront.listings.seed import seed_demo_catalogue
from tests.factories import lapse


def test_a_newcomer_can_browse_hold_and_release_on_embedded_defaults(embedded_app):
    client = embedded_app.test_client()
    assert embedded_app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    seed_demo_catalogue()
    assert client.get("/").status_code == 200

    single = client.get("/api/inventory/check/4").get_json()
    assert single == {"productId": 4, "available": 1, "total": 1, "inStock": True}

    created = client.post("/api/reservations", json={"productId": 4, "userId": "newcomer-1"})
    assert created.status_code == 201
    assert client.post("/api/reservations", json={"productId": 4, "userId": "newcomer-1"}).status_code == 200
    other = embedded_app.test_client()  # another newcomer's browser (this client is one browser, whatever id it sends)
    refused = other.post("/api/reservations", json={"productId": 4, "userId": "newcomer-2"})
    assert refused.status_code == 409 and refused.get_json()["available"] == 0

    reservation = created.get_json()["reservationId"]
    lapse(reservation)
    assert client.get("/api/inventory/check/4").get_json()["available"] == 1
    taken = other.post("/api/reservations", json={"productId": 4, "userId": "newcomer-2"}).get_json()
    released = other.delete(f"/api/reservations/{taken['reservationId']}", headers={"X-Visitor-Id": "newcomer-2"})
    assert released.get_json()["status"] == "CANCELLED"
    assert client.get("/api/inventory/check/4").get_json()["available"] == 1
