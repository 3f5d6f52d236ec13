from flask import Response

from storefront.clock import utcnow


def csv_download(body: str, name: str) -> Response:
    """A CSV export as a dated attachment (``<name>-YYYYmmdd-HHMM.csv``), never cached."""
    filename = f"{name}-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})
