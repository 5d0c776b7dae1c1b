"""A normalised image on its way from the gateway to the vision encoder."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from services.common.image_input import content_hash


@dataclass(frozen=True)
class RawImage:
    """Upright 8-bit RGB pixels within the pixel budget (about 0.75 MB at 512x512): cheap to pickle,
    no re-encoding on either side, and the content hash travels along as the cache key."""

    content_hash: str
    width: int
    height: int
    rgb: bytes

    @classmethod
    def from_image(cls, image: Image.Image) -> RawImage:
        if image.mode != "RGB":
            raise ValueError(f"a RawImage is made of RGB pixels, not {image.mode}")
        return cls(content_hash(image), image.width, image.height, image.tobytes())

    def to_image(self) -> Image.Image:
        return Image.frombytes("RGB", (self.width, self.height), self.rgb)
