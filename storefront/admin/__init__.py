"""The operators' pages, behind HTTP basic auth (user ``admin``, ``ADMIN_PASSWORD``).

Off (404) when ADMIN_PASSWORD is unset. Browsers resend basic-auth credentials
by themselves, so every state-changing request here must also carry a CSRF
token (Flask-WTF): a forged cross-site form would otherwise act as the operator.
"""

from flask import Blueprint

# Defined here, below every route module, so each can join it without importing another.
bp = Blueprint("admin", __name__, url_prefix="/admin")
