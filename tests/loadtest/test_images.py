from __future__ import annotations

import io

from PIL import Image

from loadtest.images import ImageSize, picture
from services.common.image_input import load_image


def test_pictures_are_what_clients_send_and_the_gateway_accepts() -> None:
    for seed, size in enumerate(ImageSize):
        image = picture(seed, size)
        width, height, image_format = size.value
        decoded = Image.open(io.BytesIO(image.data))
        assert (decoded.size, decoded.format) == ((width, height), image_format)
        assert image.media_type == f"image/{image_format.lower()}"
        load_image(image.data)  # raises if the gateway would refuse it


def test_a_phone_photo_is_several_megabytes_and_a_thumbnail_a_few_kilobytes() -> None:
    assert len(picture(0, ImageSize.PHOTO).data) > 2_000_000
    assert len(picture(0, ImageSize.THUMBNAIL).data) < 20_000


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_pixels() -> None:
    assert picture(7).data == picture(7).data
    pixels = {Image.open(io.BytesIO(picture(seed).data)).tobytes() for seed in range(9)}
    assert len(pixels) == 9
