"""The migrations build exactly the schema the models describe, and take it down again."""

import flask_migrate
from alembic import command
from sqlalchemy import inspect

from storefront import create_app
from storefront.extensions import db
from tests.conftest import TEST_SECRET_KEY


def test_upgrade_an_empty_database_to_head_check_and_downgrade(postgres):
    url = postgres.create_database("migration_check")
    try:
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": TEST_SECRET_KEY, "DEMO_PAYMENTS": "1"})
        with app.app_context():
            flask_migrate.upgrade()
            assert {"products", "holds", "alembic_version"} <= set(inspect(db.engine).get_table_names())
            indexes = {index["name"]: index for index in inspect(db.engine).get_indexes("holds")}
            # What a new hold writes to: its key, the owner's live hold (led by the visitor id, which
            # the hold limit counts by), the product's live holds by expiry, the visitor's history.
            assert indexes["uq_holds_pending_owner"]["column_names"] == ["user_id", "browser_id", "product_id"]
            assert {"ix_holds_pending_product_expiry", "ix_holds_visitor_created"} <= set(indexes)
            assert "ix_holds_pending_visitor" not in indexes
            # Holds without a payment or a checkout take no entry in those indexes.
            for name in ("ix_holds_payment_intent_id", "ix_holds_checkout_id", "uq_holds_pending_owner"):
                assert "postgresql_where" in indexes[name]["dialect_options"], name

            # `flask db check`: autogenerate finds nothing between models and migrations.
            config = app.extensions["migrate"].migrate.get_config()
            command.check(config)

            flask_migrate.downgrade(revision="base")
            assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
            db.engine.dispose()
    finally:
        postgres.drop_database("migration_check")


def test_migrations_run_on_embedded_sqlite(embedded_app):
    assert {"products", "holds"} <= set(inspect(db.engine).get_table_names())
    config = embedded_app.extensions["migrate"].migrate.get_config()
    command.check(config)
