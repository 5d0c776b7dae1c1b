"""Generated test pictures (never downloaded): receipts with text, products on a backdrop, and shapes, at
the sizes clients send, from phone photos of several MB down to thumbnails. The same seed gives the same
bytes; a new seed gives new pixels, which no cache on the server has seen. Text is Latin only: Pillow's
built-in font has no CJK glyphs (the questions carry the Chinese)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from enum import Enum
from functools import cached_property

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

STORES = ("Lotus Mart", "Cafe Nord", "Harbour Books", "Taxi 8812", "Pharmacy 24")
ITEMS = ("Espresso", "Milk 1L", "Notebook A5", "Train ticket", "Sandwich", "Apples x3", "Batteries", "Parking")
BRANDS = ("AQUA", "NOVA", "TEA HOUSE", "ZEN", "PIXEL")


@dataclass(frozen=True)
class TestImage:
    data: bytes
    media_type: str  # image/jpeg or image/png

    @cached_property  # a reused picture is encoded once
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode()}"

    @property
    def file_name(self) -> str:
        return "picture." + self.media_type.removeprefix("image/")


class ImageSize(Enum):
    """(width, height, format): what clients upload, from a gallery thumbnail to a 12 MP phone photo."""

    THUMBNAIL = (160, 120, "JPEG")
    SQUARE = (512, 512, "JPEG")
    SCREENSHOT = (1280, 720, "PNG")
    PHOTO = (4032, 3024, "JPEG")


def picture(seed: int, size: ImageSize = ImageSize.SQUARE) -> TestImage:
    """A receipt, a product or shapes (by seed), drawn at a modest size and scaled to `size`; a photo also
    gets sensor noise, which is what makes a real one several MB."""
    width, height, image_format = size.value
    rng = np.random.default_rng(seed)
    draw = (_receipt, _product, _shapes)[seed % 3]
    canvas_width = min(width, 640)
    image = draw(rng, canvas_width, max(round(canvas_width * height / width), 1))
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    if size is ImageSize.PHOTO:
        image = _with_sensor_noise(image, rng)
    return _encoded(image, image_format)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _receipt(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), (90, 80, 70))
    draw = ImageDraw.Draw(image)
    margin = max(width // 10, 2)
    draw.rectangle((margin, 0, width - margin, height), fill=(250, 248, 240))
    line = max(height // 22, 6)
    font = _font(max(line - 2, 4))
    x, y = margin + line, line
    draw.text((x, y), str(rng.choice(STORES)), fill=(20, 20, 20), font=_font(line + 2))
    y += 2 * line
    draw.text(
        (x, y),
        f"No. {rng.integers(10**6, 10**7)}  2025-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}",
        fill=(60, 60, 60),
        font=font,
    )
    total = 0.0
    for _ in range(int(rng.integers(3, 8))):
        y += line
        price = float(rng.integers(100, 5000)) / 100
        total += price
        draw.text((x, y), f"{rng.choice(ITEMS)}", fill=(30, 30, 30), font=font)
        draw.text((width - margin - 5 * line, y), f"{price:8.2f}", fill=(30, 30, 30), font=font)
    y += 2 * line
    draw.text((x, y), f"TOTAL  {total:.2f}", fill=(0, 0, 0), font=_font(line + 2))
    return image


def _product(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    top, bottom = rng.integers(120, 256, size=3), rng.integers(0, 120, size=3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    box_w, box_h = width * rng.uniform(0.25, 0.45), height * rng.uniform(0.45, 0.75)
    left, upper = (width - box_w) / 2, (height - box_h) / 2
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    draw.ellipse((left, upper + box_h * 0.9, left + box_w * 1.2, upper + box_h * 1.05), fill=(40, 40, 40))
    draw.rounded_rectangle((left, upper, left + box_w, upper + box_h), radius=max(int(box_w // 8), 1), fill=colour)
    draw.rectangle((left, upper + box_h * 0.35, left + box_w, upper + box_h * 0.6), fill=(245, 245, 245))
    draw.text(
        (left + box_w * 0.1, upper + box_h * 0.4),
        str(rng.choice(BRANDS)),
        fill=(10, 10, 10),
        font=_font(max(int(box_h // 10), 4)),
    )
    return image.filter(ImageFilter.GaussianBlur(0.6))


def _shapes(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(200, 256, size=3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        r = float(rng.uniform(0.05, 0.25)) * min(width, height)
        colour = tuple(int(c) for c in rng.integers(0, 200, size=3))
        match int(rng.integers(0, 3)):
            case 0:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
            case 1:
                draw.rectangle((x - r, y - r / 2, x + r, y + r / 2), fill=colour)
            case _:
                draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
    return image


def _with_sensor_noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    noise = rng.normal(0, 6, size=(image.height, image.width, 1)).astype(np.int16)
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _encoded(image: Image.Image, image_format: str) -> TestImage:
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, format="JPEG", quality=92)
    else:
        image.save(buffer, format="PNG")
    return TestImage(buffer.getvalue(), f"image/{image_format.lower()}")
