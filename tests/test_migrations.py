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
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": TEST_SECRET_KEY})
        with app.app_context():
            flask_migrate.upgrade()
            assert {"products", "holds", "alembic_version"} <= set(inspect(db.engine).get_table_names())
            index_names = {index["name"] for index in inspect(db.engine).get_indexes("holds")}
            assert {"uq_holds_pending_owner", "ix_holds_pending_product_expiry", "ix_holds_pending_visitor"} <= index_names

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
