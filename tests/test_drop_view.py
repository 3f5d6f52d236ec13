"""The owner's live view of a drop (issue 21): its figures are the holds table's, counted
straight from it after a scripted drop, and its reads use the drop's window of the index."""

import re
import uuid
from datetime import timedelta

from sqlalchemy import event, text, update

from storefront.admin.drops import drop_of
from storefront.listings.management import add_product
from storefront.catalog.models import Product
from storefront.clock import utcnow
from storefront.extensions import db
from storefront.inventory.models import Hold
from tests.factories import lapse, settle, visitor
from tests.test_admin import PASSWORD, basic


def add(**values) -> int:
    with db.engine.begin() as conn:
        return add_product(conn, values)


def figures(page: str) -> dict[int, list[str]]:
    rows = re.findall(r'<tr data-item="(\d+)"><th scope="row">[^<]*</th>(.*?)</tr>', page, re.S)
    return {int(item): re.findall(r"<td>([^<]*)</td>", cells) for item, cells in rows}


def test_the_live_view_counts_what_the_holds_table_says(make_app, settings):
    app = make_app({**settings, "ADMIN_PASSWORD": PASSWORD})
    with app.app_context():
        client, owner = app.test_client(), app.test_client()
        parent = add(sku="DROP", name="Drop", price="50.00", total="0")
        small = add(sku="DROP-S", option_of="DROP", option="S", total="3")
        large = add(sku="DROP-L", option_of="DROP", option="L", total="2")
        before = client.post("/api/reservations", json={"productId": small, "userId": visitor(99)}).get_json()
        start = utcnow() - timedelta(minutes=1)  # the drop began a minute ago
        db.session.execute(update(Hold).where(Hold.id == uuid.UUID(before["reservationId"]))
                           .values(created_at=start - timedelta(minutes=5)))  # before the drop: not counted
        db.session.execute(update(Product).where(Product.id.in_([parent, small, large])).values(starts_at=start))
        db.session.commit()

        placed = {n: client.post("/api/reservations", json={"productId": small if n < 2 else large,
                                                              "userId": visitor(n)}).get_json() for n in range(4)}
        settle(placed[0]["reservationId"])                    # S: paid
        lapse(placed[1]["reservationId"])                  # S: lapsed (unswept)
        settle(placed[2]["reservationId"])                    # L: paid
        assert client.delete(f"/api/reservations/{placed[3]['reservationId']}",
                             headers={"X-Visitor-Id": visitor(3)}).status_code == 200  # L: released
        again = client.post("/api/reservations", json={"productId": large, "userId": visitor(4)})
        assert again.status_code == 201                    # L: the last unit taken: sold out

        page = owner.get(f"/admin/drops/{parent}", headers=basic())
        assert page.status_code == 200
        shown = figures(page.get_data(as_text=True))

        counted = {}
        for item in (small, large):
            row = db.session.execute(text(
                "SELECT count(*),"
                " sum(CASE WHEN status = 'COMPLETED' THEN 1 ELSE 0 END),"
                " sum(CASE WHEN status = 'EXPIRED' OR (status = 'PENDING' AND expires_at <= :now) THEN 1 ELSE 0 END),"
                " sum(CASE WHEN status = 'CANCELLED' THEN 1 ELSE 0 END),"
                " coalesce(sum(CASE WHEN status = 'COMPLETED' THEN quantity END), 0)"
                " FROM holds WHERE product_id = :item AND created_at >= :start"),
                {"item": item, "start": start, "now": utcnow()}).one()
            counted[item] = [str(value) for value in row]
        # total, held now, sold, left, placed, paid, lapsed, released, paid / placed, sold out after
        assert shown[small][:8] == ["3", "1", "1", "1", *counted[small][:4]]  # held: the hold from before
        assert counted[small][:4] == ["2", "1", "1", "0"]
        assert shown[large][:8] == ["2", "1", "1", "0", *counted[large][:4]]
        assert counted[large][:4] == ["3", "1", "0", "1"]
        assert shown[small][8] == "50%" and shown[large][8] == "33%"
        assert shown[small][9] == "–" and shown[large][9] != "–"  # L sold out, S not yet

        drop = drop_of(db.session.connection(), db.session.get(Product, parent))
        assert sum(drop.counts["placed"]) == 5 and sum(drop.counts["paid"]) == 2
        assert sum(drop.counts["lapsed"]) == 1

        live = owner.get(f"/admin/drops/{parent}/live", headers=basic()).get_data(as_text=True)
        assert live.startswith('{# ') is False and 'id="drop-live"' in live and "<html" not in live
        assert 'hx-trigger="every 5s"' in live


def test_the_live_views_reads_take_the_drops_window_of_the_index(make_app, settings):
    """Every statement the live view really runs on the drop's window of the holds table (captured
    from SQLAlchemy as the page is served, with its parameters) is planned on ix_holds_product_created.
    (The stock levels beside them read the lapsed holds by expiry, on the index made for that.)"""
    app = make_app({**settings, "ADMIN_PASSWORD": PASSWORD})
    with app.app_context():
        parent = add(sku="WIN", name="Window", price="5.00", total="10")
        statements = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            if "holds.created_at >=" in statement:
                statements.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            assert app.test_client().get(f"/admin/drops/{parent}/live", headers=basic()).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        assert len(statements) >= 2  # the figures and the chart's minutes
        with db.engine.connect() as conn:
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: ask which index serves it
            for statement, parameters in statements:
                plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
                assert "ix_holds_product_created" in plan, f"{statement}\n{plan}"


def test_the_live_view_counts_at_the_drops_pace_on_sqlite_too(embedded_app):
    client = embedded_app.test_client()
    parent = add(sku="EMB", name="Embedded", price="5.00", total="0")
    option = add(sku="EMB-1", option_of="EMB", option="One", total="2")
    start = utcnow() - timedelta(minutes=3)
    db.session.execute(update(Product).where(Product.id.in_([parent, option])).values(starts_at=start))
    db.session.commit()
    placed = client.post("/api/reservations", json={"productId": option, "userId": visitor(1)}).get_json()
    lapse(placed["reservationId"], seconds_ago=30)
    drop = drop_of(db.session.connection(), db.session.get(Product, parent))
    # Three minutes old: counted per ten seconds, 19 steps so far, the hold in the last two.
    assert drop.step_seconds == 10 and len(drop.counts["placed"]) == 19 and sum(drop.counts["placed"][-2:]) == 1
    assert sum(drop.counts["lapsed"]) == 1 and sum(drop.counts["lapsed"][-8:]) == 1
    assert [(item.placed, item.lapsed, item.left) for item in drop.items] == [(1, 1, 2)]
