"""Product photos uploaded in the admin: checked, cleaned and stored under a name that is their hash.

Only JPEG, PNG and WebP, at most MAX_UPLOAD_BYTES, decoded by Pillow to prove they are
what they claim (a renamed script is not an image), turned upright, scaled down to
MAX_SIDE pixels and saved again, which drops every bit of metadata (a phone photo's
EXIF carries where it was taken). The file's name is a hash of what is stored, so the
URL can be cached for a year like the static files', and a new photo gets a new URL.
"""

import hashlib
import io
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_SIDE = 1600
MAX_PIXELS = 40_000_000  # a 5 MB file that decodes to more is a decompression bomb
FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "WEBP": ("webp", "image/webp")}
UPLOADS_PREFIX = "uploads/"  # product.image for an uploaded photo; others are under static/


class InvalidImage(ValueError):
    pass


def store_image(stream, upload_root: Path) -> str:
    """Check and store an uploaded photo; returns what ``product.image`` should say. Raises InvalidImage."""
    data = stream.read(MAX_UPLOAD_BYTES + 1)
    if not data:
        raise InvalidImage("The file is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidImage(f"The photo must be at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind = probe.format
            if kind not in FORMATS:
                raise InvalidImage("The photo must be a JPEG, PNG or WebP image.")
            if probe.width * probe.height > MAX_PIXELS:
                raise InvalidImage("The photo has too many pixels.")
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image = ImageOps.exif_transpose(image)
            image.thumbnail((MAX_SIDE, MAX_SIDE))
            if kind == "JPEG" and image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            out = io.BytesIO()
            image.save(out, format=kind, **({"quality": 85, "optimize": True} if kind == "JPEG" else {}))
    except InvalidImage:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise InvalidImage("The file is not an image this shop can use (JPEG, PNG or WebP).") from None
    stored = out.getvalue()
    extension, _ = FORMATS[kind]
    name = f"products/{hashlib.sha256(stored).hexdigest()[:20]}.{extension}"
    target = upload_root / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, then renamed: a reader never sees half a photo.
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        with os.fdopen(handle, "wb") as file:
            file.write(stored)
        os.replace(temporary, target)
        os.chmod(target, 0o644)
    return UPLOADS_PREFIX + name
