"""What the shop writes for a spreadsheet to open (the orders export, the catalogue export)."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value) -> str:
    """A cell a spreadsheet cannot mistake for a formula: text starting with = + - @ (or a tab or a
    carriage return) is written with a leading apostrophe, which the spreadsheet shows as text (OWASP's
    CSV injection advice). A name like "=HYPERLINK(...)" once went into the catalogue export as given."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def from_spreadsheet_cell(text):
    """A cell as :func:`spreadsheet_cell` wrote it, read back: the apostrophe before a formula's first
    character dropped, so that an export imported again changes nothing."""
    if isinstance(text, str) and text.startswith("'") and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text
