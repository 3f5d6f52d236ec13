"""The shopper's way in: the catalogue's pages, the stock check, holds, the cart and checkout,
and the payment form. Its routes join the areas below (catalogue, inventory, cart, payments);
nothing below imports them.
"""

from flask import Blueprint

# Defined here, below every route module, so each can join it without importing another.
bp = Blueprint("shop", __name__)
