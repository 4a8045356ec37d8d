"""Banner images: the dataset's file when there is one, else a generated PNG showing the id.

The original dataset's `image_<id>.png` files hold JPEG bytes, so the content type is sniffed
from the bytes, never taken from the name. Images are immutable per id: served with a strong
ETag (content hash) and a long cache lifetime, kept in a bounded in-process cache.
"""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cachetools import LRUCache
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 300, 250
_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class BannerImage:
    body: bytes
    content_type: str
    etag: str


def sniff(body: bytes) -> str:
    for signature, content_type in _SIGNATURES:
        if body.startswith(signature):
            return content_type
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _background(banner_id: int) -> tuple[int, int, int]:
    # Golden-ratio steps around the hue circle make neighbouring ids look clearly different.
    red, green, blue = colorsys.hls_to_rgb((banner_id * 0.618034) % 1.0, 0.45, 0.65)
    return round(red * 255), round(green * 255), round(blue * 255)


def draw_banner(banner_id: int, caption: str | None = None, *, image_format: str = "PNG") -> bytes:
    """A 300x250 image (PNG unless told) showing "banner <id>" (and a caption) on a colour derived
    from the id."""
    image = Image.new("RGB", (WIDTH, HEIGHT), _background(banner_id))
    draw = ImageDraw.Draw(image)
    lines = [(f"banner {banner_id}", _font(40), HEIGHT / 2)]
    if caption:
        lines.append((caption, _font(20), HEIGHT * 0.75))
    for text, font, y in lines:
        # A dark outline keeps white text readable on every background colour.
        draw.text(
            (WIDTH / 2, y),
            text,
            font=font,
            anchor="mm",
            fill="white",
            stroke_width=2,
            stroke_fill="black",
        )
    out = io.BytesIO()
    image.save(out, format=image_format)
    return out.getvalue()


class ImageStore:
    def __init__(self, directories: Sequence[Path], *, cache_size: int = 1024) -> None:
        self.directories = tuple(directories)
        self._cache: LRUCache[int, BannerImage] = LRUCache(maxsize=cache_size)

    async def get(self, banner_id: int) -> BannerImage:
        cached = self._cache.get(banner_id)
        if cached is None:
            cached = await asyncio.to_thread(self._load, banner_id)
            self._cache[banner_id] = cached
        return cached

    def _load(self, banner_id: int) -> BannerImage:
        name = f"image_{banner_id}.png"
        path = next((d / name for d in self.directories if (d / name).is_file()), None)
        body = path.read_bytes() if path is not None else draw_banner(banner_id)
        return BannerImage(body, sniff(body), f'"{hashlib.sha256(body).hexdigest()[:32]}"')
