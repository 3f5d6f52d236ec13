"""The browsable API page (/api/docs): Swagger UI, vendored, over the shop's own OpenAPI document,
in Chromium under the shop's Content-Security-Policy; it reads, and sends nothing."""

from urllib.parse import urlsplit

from playwright.sync_api import expect


def test_the_api_page_shows_every_operation_from_the_shops_own_files(store, shopper):
    url = store()
    reader = shopper(url)
    requests = []
    reader.page.on("request", lambda request: requests.append((request.method, request.url)))
    page = reader.visit("/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Storefront")
    expect(page.locator(".opblock-summary-path", has_text="/api/reservations").first).to_be_visible()
    assert page.locator(".opblock").count() >= 10
    page.locator(".opblock-summary", has_text="/api/reservations").first.click()
    expect(page.locator(".opblock-body").first).to_be_visible()
    assert page.locator("button.try-out__btn").count() == 0  # reading only: nothing is sent from it
    shop = urlsplit(url).netloc
    assert {urlsplit(address).netloc for _, address in requests} <= {shop, ""}  # "" for data: URLs
    assert {method for method, _ in requests} == {"GET"}
