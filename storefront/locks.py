"""PostgreSQL's advisory locks, by key space, in one table.

A lock is ``pg_advisory_xact_lock(hashtextextended(key, space))``, held until its transaction
ends. The space is the hash's seed: a visitor id and an address that hash alike still lock apart.
The hold function (``inventory/sql/place_hold_v9.sql``) takes VISITOR and ADDRESS by number, as
these do; ``tests/test_house.py`` checks the SQL quotes this table. SQLite has one writer and
takes none of them.
"""

import enum

from sqlalchemy import Connection, bindparam, func, select


class KeySpace(enum.IntEnum):
    VISITOR = 0  # an owner's holds are counted and added to under its visitor id (inventory/grants.py, the SQL)
    ADDRESS = 1  # a client address's held units, and an IPv6 /48's (inventory/grants.py, the SQL)
    LINE_JOINER = 2  # an owner joining a drop's line (inventory/queue.py)
    LINE_ADDRESS = 3  # a client address's places in a line, and its /48's (inventory/queue.py)
    BUYER_FAMILY = 5  # a product family's limit per buyer, at delivery and settlement (orders/buyers.py)


_LOCK = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key"), bindparam("space"))))


def lock_key(conn: Connection, space: KeySpace, key: str) -> None:
    """Take ``key``'s lock in ``space`` until the transaction ends (PostgreSQL; nothing on SQLite)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"key": key, "space": int(space)})
