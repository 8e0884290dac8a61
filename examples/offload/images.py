"""The image work of the demo: generating uploads for load tests, and the
thumbnail a worker makes of one."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

THUMBNAIL_WIDTH = 256


def make_photo(seed: int, width: int = 1280, height: int = 960) -> bytes:
    """A JPEG that stands in for a phone photo: gradients, a little noise
    and some shapes, about 110 KB at the default size, so that decoding
    and resizing it is real work (tens of milliseconds) for a worker."""
    ramp = Image.linear_gradient("L")
    red = ramp.resize((width, height))
    green = ramp.rotate(90 + seed % 180).resize((width, height))
    blue = Image.effect_noise((width, height), 8)
    img = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(img)
    for i in range(20):
        x = (seed * 97 + i * 131) % width
        y = (seed * 53 + i * 71) % height
        draw.ellipse((x, y, x + width // 6, y + height // 6),
                     outline=(255, (seed + i * 40) % 256, 0), width=8)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def make_thumbnail(image: bytes) -> bytes:
    """A PNG THUMBNAIL_WIDTH pixels wide. The whole image is decoded
    (no JPEG draft mode) and resized with Lanczos: the slow, CPU-bound
    part that the web tier hands off. Raises PIL.UnidentifiedImageError
    when the bytes are not an image."""
    with Image.open(io.BytesIO(image)) as img:
        rgb = img.convert("RGB")
    height = max(1, round(rgb.height * THUMBNAIL_WIDTH / rgb.width))
    thumb = rgb.resize((THUMBNAIL_WIDTH, height), Image.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, "PNG")
    return out.getvalue()
