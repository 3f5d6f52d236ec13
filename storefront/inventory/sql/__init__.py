"""What runs inside PostgreSQL, in files a reader of inventory/ can open.

Each version of a function is its own file, never edited once a migration installed it:
the migration that changes a function installs the new file, and its downgrade the one
before, so the history lives in migrations without copying bodies into them.
"""

from importlib.resources import files


def sql(name: str) -> str:
    """The text of ``storefront/inventory/sql/<name>``."""
    return files(__name__).joinpath(name).read_text(encoding="utf-8")
