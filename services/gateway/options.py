"""The gateway's settings."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.common.image_input import ImageLimits


class GatewayOptions(BaseModel):
    model_name: str = Field(description="the model id clients name in requests and see in /v1/models")
    max_images_per_request: int = Field(4, ge=0)
    max_image_bytes: int = Field(20 << 20, ge=1, description="per image, before decoding")
    max_pixels: int = Field(512 * 512, ge=1, description="images are downscaled to this, aspect ratio kept")

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_pixels=self.max_pixels)
