"""The door's price: an ALTCHA proof of work, asked of whoever joins a waiting room.

A challenge (``challenge()``) is a salted SHA-256 of a secret number below
QUEUE_PROOF_OF_WORK, signed with a key derived from SECRET_KEY; the browser's widget
finds the number (on average half of maxnumber hashes) and sends it back as a base64
payload. ``spend()`` verifies it with the ``altcha`` library and records its challenge, so
that a solution joins once: a second use is refused like a wrong one. Challenges lapse after
CHALLENGE_SECONDS (the salt carries the expiry, signed); spent ones are forgotten after that.
"""

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta

from altcha import ChallengeOptionsV1, create_challenge_v1, verify_solution_v1
from flask import current_app
from sqlalchemy import Connection, String, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import UTCDateTime, utcnow
from storefront.extensions import db

CHALLENGE_SECONDS = 20 * 60


class SpentChallenge(db.Model):
    __tablename__ = "spent_challenges"

    challenge: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NotSolved(ValueError):
    """A payload that is missing, malformed, wrong, lapsed or already used."""


def _key() -> bytes:
    secret = current_app.config["SECRET_KEY"]
    return hmac.new(secret.encode() if isinstance(secret, str) else secret, b"storefront.altcha",
                    hashlib.sha256).digest()


def challenge(max_number: int, now: datetime | None = None) -> dict:
    """A fresh challenge, as ALTCHA's widget asks for it: algorithm, challenge, maxnumber, salt, signature."""
    expires = (now or utcnow()) + timedelta(seconds=CHALLENGE_SECONDS)
    made = create_challenge_v1(ChallengeOptionsV1(algorithm="SHA-256", max_number=max_number,
                                                  hmac_key=_key(), expires=expires))
    # The widget's (and the contract's) spelling: maxnumber, where the library's to_dict says maxNumber.
    return {"algorithm": made.algorithm, "challenge": made.challenge, "maxnumber": made.max_number,
            "salt": made.salt, "signature": made.signature}


def spend(conn: Connection, payload, now: datetime | None = None) -> None:
    """Check a solution and mark its challenge used, in the caller's transaction. Raises NotSolved."""
    if not isinstance(payload, str) or not payload or len(payload) > 2000:
        raise NotSolved("altcha is required: the solved challenge's payload")
    ok, _ = verify_solution_v1(payload, _key(), check_expires=True)
    if not ok:
        raise NotSolved("altcha does not solve a challenge of this shop's, or it lapsed")
    solved = json.loads(base64.b64decode(payload))["challenge"]
    now = now or utcnow()
    try:
        with conn.begin_nested():
            conn.execute(SpentChallenge.__table__.insert(), {
                "challenge": solved, "expires_at": now + timedelta(seconds=CHALLENGE_SECONDS)})
    except IntegrityError:
        raise NotSolved("altcha was used already: solve a new challenge") from None


def forget_lapsed(conn: Connection, now: datetime | None = None) -> int:
    """Spent challenges past their expiry can no longer be replayed: forgotten."""
    table = SpentChallenge.__table__
    return conn.execute(delete(table).where(table.c.expires_at < (now or utcnow()))).rowcount
