"""Products put up for sale with their stock: added, updated, archived, imported and exported
(CSV), and the demo catalogue. Above both the catalogue, which owns the products, and the
inventory, which owns their stock, so that one step can write both."""
