"""Orders: what a paid hold or checkout becomes, with where to send it and whether it went."""
